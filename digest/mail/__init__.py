"""Mail: building messages, rendering digests and confirmations, sending what is owed.

Code outside this package imports only what is named here; the modules inside are its
own (tests may reach in). Inside, one module per job:

    message.py       a message: From/To/Date, list headers, the stable Message-ID
    mime.py          a digest's MIME bytes in one pass (PrebuiltEmail)
    templates.py     the Jinja2 environments and the MJML layouts, compiled once
    cards.py         a paper's card (PaperEntry) and its text helpers
    digest_email.py  a digest's context and render, and it as a message
    fast_render.py   many digests at once, each card rendered once (DigestRenderer)
    moulds.py        a digest's frame rendered once per shape, filled in per subscriber
    confirmation.py  the signup emails (confirmation, already subscribed)
    outbox.py        the embedded email backend: one .eml file per message
    sending.py       senders draining owed deliveries batch by batch (BatchSender)
    connections.py   several SMTP or ESP connections, one thread each
    smtp.py          Django's SMTP backend with the envelope pipelined (RFC 2920)
    rate.py          the send rate limit shared by every worker (GCRA in Redis)
    leases.py        claims with leases, and the sweep of lapsed ones
    esp_batch.py     alike digests as one ESP API call (Mailgun, Brevo)

The public names, one line each:

Sending
    owed_send                   send owed deliveries batch by batch until none is left
    owed_now                    the queued deliveries whose time has come
    lapsed_release              the sweep: deliveries of dead senders back to the queue
    deliveries_requeue          an operator's decision: send failed deliveries again
    Outcome, SendResult         what became of one delivery
    BatchResult                 counts of what a sender did

Digests
    render_digest               a saved delivery's digest (the browser copy)
    render_digest_for           a digest of any papers for any subscriber (previews)
    digest_message              one delivery's digest as a message
    digest_headers              a subscriber's list headers (List-Unsubscribe, List-Id…)
    DigestItem                  a paper to render without a saved delivery
    RenderedEmail               subject, text and HTML of one email

Cards
    paper_entry                 a paper as the templates show it
    PaperEntry, Why, Link       a card, why the paper is there, one of its links
    summary_of, authors_line    a paper's short summary, its authors on one line

Other emails
    confirmation_message        the double opt-in link to a pending subscriber
    already_subscribed_message  the settings link to someone already subscribed
    render_email                subject, text and HTML from one kind's three templates
    signup_headers              the headers of an email someone asked for (RFC 3834)
    build_message               the one builder of every email
"""

from .cards import DigestItem, Link, PaperEntry, Why, authors_line, paper_entry, summary_of
from .confirmation import (
    already_subscribed_message,
    confirmation_message,
    render_email,
    signup_headers,
)
from .digest_email import digest_headers, digest_message, render_digest, render_digest_for
from .leases import lapsed_release, owed_now
from .message import RenderedEmail, build_message
from .sending import BatchResult, Outcome, SendResult, deliveries_requeue, owed_send

__all__ = [
    "BatchResult",
    "DigestItem",
    "Link",
    "Outcome",
    "PaperEntry",
    "RenderedEmail",
    "SendResult",
    "Why",
    "already_subscribed_message",
    "authors_line",
    "build_message",
    "confirmation_message",
    "deliveries_requeue",
    "digest_headers",
    "digest_message",
    "lapsed_release",
    "owed_now",
    "owed_send",
    "paper_entry",
    "render_digest",
    "render_digest_for",
    "render_email",
    "signup_headers",
    "summary_of",
]
