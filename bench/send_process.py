"""One sender process of the benchmarks: drains an edition's owed digests to the null
backend and prints its figures as one JSON line.

    python bench/send_process.py EDITION_ID DATABASE_URL VAR_DIR

A fresh interpreter, not a fork of the bench: its memory is the sender's own (the bench's
generated data and the matching's model are not in it), so peak RSS shows what sending
costs, and whether it grows with the number of readers.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_digest import NULL_BACKEND, peak_rss_mb, setup_django  # noqa: E402


def main(argv: list[str]) -> int:
    edition_id, database_url, var_dir = int(argv[0]), argv[1], Path(argv[2])
    setup_django(database_url, var_dir)
    from django.test import override_settings

    from bench import null_backend
    from digest.mail import Outcome, owed_send

    start = time.perf_counter()
    with override_settings(EMAIL_BACKEND=NULL_BACKEND):
        result = owed_send(edition_id=edition_id)
    figures = {
        "sent": result.count(Outcome.SENT),
        "other": result.total - result.count(Outcome.SENT),
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": peak_rss_mb(),
        "bytes": null_backend.STATS.bytes,
        "cards_rendered": result.cards_rendered,
        "cards_reused": result.cards_reused,
        "errors": result.errors[:5],
    }
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
