"""Benchmark ESP batch sending: API calls and messages/s against a loopback Mailgun API.

    .venv/bin/python bench/bench_esp_batch.py --readers 10000 [--trending 0.3]
        [--cohorts 1000] [--send-batch 500] [--seed 1] [--database-url postgres://…]

A share `--trending` of the subscribers are trending-only (one digest for all of them); the
others fall into `--cohorts` groups of subscribers with the same topics (Zipf-weighted: a
few large, a long tail of one or two), each cohort with a digest of its own. Deliveries
and their papers are written directly, as matching would leave them (no matching is
timed). The edition is then sent twice from one sender in this process, to a Mailgun
API on loopback in a process of its own (HTTP/1.1, answering at once): one API call per
digest (PAPERBOY_ESP_BATCH=false), then batched. Figures on stdout, one line per mode.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_digest import (  # noqa: E402
    RESERVED_DATABASES,
    check_empty,
    delete_data,
    log,
    run_on_database,
)

SENDER_DOMAIN = "bench.example"
PAPERS = 50
PAPERS_EACH = (3, 10)  # papers in one cohort's digest
COHORT_TOPICS = (1, 4)
COHORT_ZIPF = 1.0


# --- The loopback Mailgun ---------------------------------------------------------------------


def serve() -> None:
    """Answer Mailgun's send API at once, counting calls and recipients (`--serve`)."""
    stats = {"calls": 0, "messages": 0}
    lock = threading.Lock()
    to_field = re.compile(rb"(?:^|&)to=")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as an ESP's API has

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                stats["calls"] += 1
                stats["messages"] += len(to_field.findall(body))
                call = stats["calls"]
            self._json({"id": f"<{call}@{SENDER_DOMAIN}>", "message": "Queued. Thank you."})

        def do_GET(self) -> None:
            with lock:
                answer = dict(stats)
                if self.path == "/reset":
                    stats.update(calls=0, messages=0)
            self._json(answer)

        def _json(self, data: Any) -> None:
            raw = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


def server_stats(base: str, reset: bool = False) -> dict[str, int]:
    with urllib.request.urlopen(f"{base}/{'reset' if reset else 'stats'}") as answer:
        return dict(json.load(answer))


# --- The data ---------------------------------------------------------------------------------


def make_edition(args: argparse.Namespace) -> tuple[int, int]:
    """Subscribers, papers and one edition's matched deliveries; returns (edition id, groups)."""
    from django.db import transaction
    from django.utils import timezone

    from bench.synthetic import SUBSCRIBER_TOPICS, make_papers
    from digest.models import Delivery, DeliveryPaper, Edition, Paper
    from subscriptions.models import Subscriber

    rng = random.Random(args.seed)
    date = dt.date(2026, 3, 10)
    now = timezone.now()
    cohorts = [
        SUBSCRIBER_TOPICS.distinct(rng, rng.randint(*COHORT_TOPICS)) for _ in range(args.cohorts)
    ]
    weights = [1 / (rank + 1) ** COHORT_ZIPF for rank in range(args.cohorts)]
    with transaction.atomic():
        Paper.objects.bulk_create(
            [
                Paper(batch_date=date, first_seen_at=now, **vars(p))
                for p in make_papers(rng, PAPERS, date)
            ]
        )
        papers = list(Paper.objects.order_by("-upvotes"))
        trending = [
            (p, [{"topic": f"#{n} today · {p.upvotes} upvotes", "field": "trending"}])
            for n, p in enumerate(papers[:10], 1)
        ]
        digests = [
            [
                (p, [{"topic": topics[0], "field": "title", "match": topics[0]}])
                for p in rng.sample(papers, rng.randint(*PAPERS_EACH))
            ]
            for topics in cohorts
        ]
        readers: list[tuple[Subscriber, int]] = []  # (subscriber, cohort; -1: trending)
        for n in range(args.readers):
            cohort = (
                -1 if rng.random() < args.trending else rng.choices(range(args.cohorts), weights)[0]
            )
            topics = [] if cohort < 0 else cohorts[cohort]
            readers.append(
                (
                    Subscriber(
                        email=f"reader{n}@example.org",
                        status=Subscriber.Status.ACTIVE,
                        confirmed_at=now,
                        topics=topics,
                    ),
                    cohort,
                )
            )
        Subscriber.objects.bulk_create([r for r, _ in readers], batch_size=2000)
        edition = Edition.objects.create(date=date, planned_at=now)
        deliveries = Delivery.objects.bulk_create(
            [
                Delivery(edition=edition, subscriber=r, topics=r.topics, matched_at=now)
                for r, _ in readers
            ],
            batch_size=2000,
        )
        DeliveryPaper.objects.bulk_create(
            [
                DeliveryPaper(delivery=d, paper=p, rank=rank, reasons=reasons)
                for d, (_, cohort) in zip(deliveries, readers, strict=True)
                for rank, (p, reasons) in enumerate(trending if cohort < 0 else digests[cohort], 1)
            ],
            batch_size=5000,
        )
    return edition.id, len({cohort for _, cohort in readers})


def requeue(edition_id: int) -> None:
    from digest.models import Delivery

    Delivery.objects.filter(edition_id=edition_id).update(
        status=Delivery.Status.QUEUED,
        message_id="",
        sent_at=None,
        attempts=0,
        next_attempt_at=None,
        last_error="",
    )


# --- The run ----------------------------------------------------------------------------------


def send(edition_id: int, base: str, batch: bool, send_batch: int) -> dict[str, Any]:
    from django.test import override_settings

    from digest.mail import Outcome, owed_send

    anymail = {
        "MAILGUN_API_KEY": "key-bench",
        "MAILGUN_API_URL": f"{base}/v3",
        "MAILGUN_SENDER_DOMAIN": SENDER_DOMAIN,
    }
    server_stats(base, reset=True)
    with override_settings(
        EMAIL_BACKEND="anymail.backends.mailgun.EmailBackend",
        ANYMAIL=anymail,
        PAPERBOY_ESP_BATCH=batch,
        PAPERBOY_SEND_BATCH=send_batch,
        PAPERBOY_FROM_EMAIL=f"Paperboy <paperboy@{SENDER_DOMAIN}>",
    ):
        start = time.perf_counter()
        result = owed_send(edition_id=edition_id)
        seconds = time.perf_counter() - start
    got = server_stats(base)
    sent = result.count(Outcome.SENT)
    return {
        "mode": "batch" if batch else "one_per_digest",
        "sent": sent,
        "not_sent": result.total - sent,
        "api_calls": got["calls"],
        "messages_at_esp": got["messages"],
        "send_s": round(seconds, 2),
        "messages_per_s": round(sent / seconds, 1),
        "errors": result.errors[:3],
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    check_empty()
    proc, base = start_server()
    try:
        log("writing subscribers and deliveries…")
        edition_id, groups = make_edition(args)
        log(f"{args.readers} subscribers in {groups} distinct digests")
        rows = []
        for batch in (False, True):
            requeue(edition_id)
            log(f"sending, {'batched' if batch else 'one call per digest'}…")
            row = send(edition_id, base, batch, args.send_batch)
            row.update(readers=args.readers, distinct_digests=groups)
            log(json.dumps(row))
            rows.append(row)
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if args.database_url:
            delete_data()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--trending", type=float, default=0.3, help="share trending-only")
    parser.add_argument("--cohorts", type=int, default=1000, help="distinct topic sets")
    parser.add_argument("--send-batch", type=int, default=500, help="PAPERBOY_SEND_BATCH")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)
    if args.database_url and Path(args.database_url).name in RESERVED_DATABASES:
        parser.error("that database belongs to the tests; use another one")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve()
        return 0
    rows = run_on_database(args.database_url, lambda: run(args))
    for row in rows:
        row.pop("errors")
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return 0 if all(row["not_sent"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
