"""A paper as matching sees it (digest.matching.keywords.PaperLike), made by hand in tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakePaper:
    id: int
    title: str
    abstract: str = ""
    ai_keywords: list[str] = field(default_factory=list)
    upvotes: int = 0
    ai_summary: str = ""
