"""The public daily page in a real browser, on a phone and a desktop."""

from __future__ import annotations

from typing import Any

import pytest

from digest.models import Paper
from tests.conftest import EDITION_DATE
from tests.test_email_screenshots import (
    DESKTOP,
    PHONE,
    chromium,
    open_page,
    requires_chromium,
    scrolls_sideways,
    shoot,
)
from tests.test_emails import SAMPLE_PAPERS, sample_paper

pytestmark = [pytest.mark.browser, requires_chromium]


def test_the_daily_page_reads_well_on_a_phone_and_a_desktop(
    live_server: Any, transactional_db: None
) -> None:
    for rank, entry in enumerate(SAMPLE_PAPERS, start=1):
        fields, _ = sample_paper(entry)
        Paper.objects.create(arxiv_id=f"2603.{rank:05d}", batch_date=EDITION_DATE, **fields)
    url = f"{live_server.url}/papers/{EDITION_DATE.isoformat()}/"
    with chromium() as browser:
        for width in (PHONE, DESKTOP):
            page = open_page(browser, url, width)
            assert not scrolls_sideways(page), width
            cards = page.locator("ol.cards > li")
            assert cards.count() == len(SAMPLE_PAPERS)
            assert cards.first.is_visible()
            # Links are tap targets: at least 44 px high.
            box = page.locator("ol.cards .links a").first.bounding_box()
            assert box is not None and box["height"] >= 44
            shoot(page, f"papers-day-{width}")
