"""The peer's side of `make bench-smtp`: django-newsletter 1.2.1 seeding and sending.

Run by bench/bench_smtp.py with the peer's own virtualenv (django-newsletter and its
Django), never with Paperboy's:

    peer-venv/bin/python bench/peer_newsletter/peer_send.py setup --messages N --target-bytes B
    peer-venv/bin/python bench/peer_newsletter/peer_send.py send

`setup` migrates the peer's database, subscribes N addresses to one newsletter and writes
one message whose articles are Paperboy's synthetic papers, adding articles until the
email (MIME, text and HTML) is about B bytes, the size of a Paperboy digest. `send`
submits that message as an editor would and times `submit_newsletter`, the command a
django-newsletter deployment runs from cron. Each prints one JSON object on stdout;
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# peer_settings and peer_urls live beside this file; bench.synthetic (no Django in it)
# gives the peer the same addresses and papers as Paperboy's side.
sys.path[:0] = [str(HERE), str(ROOT)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_settings")

import django  # noqa: E402

django.setup()

from django.contrib.sites.models import Site  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from newsletter.models import Article, Message, Newsletter, Submission, Subscription  # noqa: E402

from bench.synthetic import SyntheticPaper, make_papers, make_subscribers  # noqa: E402

SLUG = "ai-papers"
# Enough papers that any sensible target size is reached before they run out.
PAPER_POOL = 400
SIZE_SAMPLE = 50

T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[peer {time.perf_counter() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


class ErrorCount(logging.Handler):
    """django-newsletter logs a failed send and carries on; this counts those logs."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def article_html(paper: SyntheticPaper) -> str:
    """A paper as an editor would paste it into an article: authors, abstract, links."""
    links = [f'<a href="https://papers.example.org/{paper.arxiv_id}">arXiv {paper.arxiv_id}</a>']
    if paper.github_repo:
        links.append(f'<a href="{paper.github_repo}">code</a> ({paper.github_stars} stars)')
    if paper.project_page:
        links.append(f'<a href="{paper.project_page}">project page</a>')
    summary = f"<p><em>{paper.ai_summary}</em></p>" if paper.ai_summary else ""
    return (
        f"<p><strong>{', '.join(paper.authors)}</strong></p>"
        f"{summary}<p>{paper.abstract}</p>"
        f"<p>{paper.upvotes} upvotes · {' · '.join(links)}</p>"
    )


def message_bytes(submission: Submission, subscription: Subscription) -> int:
    """The size of the email django-newsletter builds for this subscription, as sent."""
    return len(submission.get_message(subscription).message().as_bytes())


def setup(args: argparse.Namespace) -> dict[str, object]:
    call_command("migrate", verbosity=0, interactive=False)
    if Newsletter.objects.exists():
        raise SystemExit("peer: the database already holds a newsletter; give it an empty one")
    rng = random.Random(args.seed)
    date = dt.date.fromisoformat(args.date)
    papers = make_papers(rng, PAPER_POOL, date)
    people = make_subscribers(rng, args.messages)
    site = Site.objects.get_current()
    now = timezone.now()
    with transaction.atomic():
        newsletter = Newsletter.objects.create(
            title="AI papers", slug=SLUG, email="peer@localhost", sender="Peer"
        )
        newsletter.site.set([site])
        # bulk_create skips Subscription.save, so the state save() would set is set here.
        Subscription.objects.bulk_create(
            [
                Subscription(
                    newsletter=newsletter,
                    email_field=person.email,
                    subscribed=True,
                    subscribe_date=now,
                )
                for person in people
            ],
            batch_size=2000,
        )
        message = Message.objects.create(
            title="Today's AI papers", slug="today", newsletter=newsletter
        )
    log(f"subscribed {len(people)} addresses")

    # Articles are added until the email is as large as the target: the peer's template
    # is plainer than Paperboy's, so it takes more papers to make the same bytes.
    probe = Submission(message=message, newsletter=newsletter, site=site, publish_date=now)
    reader = Subscription(newsletter=newsletter, email_field=people[0].email, subscribed=True)
    size = previous = message_bytes(probe, reader)
    article = None
    for order, paper in enumerate(papers, start=1):
        if size >= args.target_bytes:
            break
        article = Article.objects.create(
            post=message,
            sortorder=order * 10,
            title=paper.title,
            text=article_html(paper),
            url=f"https://papers.example.org/{paper.arxiv_id}",
        )
        previous, size = size, message_bytes(probe, reader)
    # An article is a few KB: keep the last one only if it brings the size nearer.
    if article is not None and size - args.target_bytes > args.target_bytes - previous:
        article.delete()
        size = previous
    articles = message.articles.count()
    log(f"message: {articles} articles, {size / 1024:.1f} KB")
    return {"subscriptions": len(people), "articles": articles, "message_bytes": size}


def send(args: argparse.Namespace) -> dict[str, object]:
    message = Message.objects.get(slug="today", newsletter__slug=SLUG)
    # What the admin's "submit" does: a Submission to every subscriber, prepared, due now.
    submission = Submission.from_message(message)
    submission.prepared = True
    submission.publish_date = timezone.now() - dt.timedelta(minutes=1)
    submission.save()
    attempted = submission.subscriptions.filter(subscribed=True).count()

    errors = ErrorCount()
    logging.getLogger("newsletter").addHandler(errors)
    log(f"submit_newsletter: {attempted} messages…")
    start = time.perf_counter()
    # Exactly what cron runs; it returns once the last message was accepted by the server.
    call_command("submit_newsletter", verbosity=0)
    seconds = time.perf_counter() - start
    log(f"submit_newsletter: {seconds:.2f}s ({attempted / seconds:.1f}/s), {errors.count} errors")

    submission.refresh_from_db()
    sample = list(submission.subscriptions.order_by("?")[:SIZE_SAMPLE])
    mean_bytes = statistics.fmean(message_bytes(submission, s) for s in sample) if sample else 0
    return {
        "attempted": attempted,
        "errors": errors.count,
        "seconds": seconds,
        "sent_flag": submission.sent,
        "mean_bytes": mean_bytes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p_setup = sub.add_parser("setup")
    p_setup.add_argument("--messages", type=int, required=True)
    p_setup.add_argument("--target-bytes", type=int, required=True)
    p_setup.add_argument("--seed", type=int, default=1)
    p_setup.add_argument("--date", default="2026-03-02")
    sub.add_parser("send")
    args = parser.parse_args()
    result = setup(args) if args.step == "setup" else send(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
