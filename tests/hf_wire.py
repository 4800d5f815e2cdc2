"""Build Hugging Face Daily Papers items in the real wire format, for tests.

The shape is that of `GET /api/daily_papers` (and of the `dailyPapers` array in the
papers page's data-props): an outer item with `paper`, `title`, `summary`, `numComments`,
`thumbnail`…, the paper's own fields inside `paper`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def hf_item(
    arxiv_id: str,
    title: str,
    summary: str,
    *,
    date: dt.date,
    upvotes: int = 10,
    comments: int = 1,
    authors: tuple[str, ...] = ("Ada Lovelace", "Alan Turing", "Grace Hopper"),
    ai_keywords: list[str] | None = None,
    ai_summary: str | None = None,
    github: str | None = None,
) -> dict[str, Any]:
    published = f"{(date - dt.timedelta(days=3)).isoformat()}T17:59:01.000Z"
    paper: dict[str, Any] = {
        "id": arxiv_id,
        "authors": [
            {"_id": f"a{i:023d}", "name": name, "hidden": False} for i, name in enumerate(authors)
        ],
        "publishedAt": published,
        "submittedOnDailyAt": f"{date.isoformat()}T04:30:53.321Z",
        "title": title,
        "submittedOnDailyBy": {"_id": "63369da91ba5d5ece24118a4", "user": "akhaliq"},
        "summary": summary,
        "upvotes": upvotes,
        "discussionId": "69ae4c5e9893f58272f74153",
    }
    if ai_keywords is not None:
        paper["ai_keywords"] = ai_keywords
    if ai_summary is not None:
        paper["ai_summary"] = ai_summary
    if github is not None:
        paper["githubRepo"] = github
        paper["githubStars"] = 42
    return {
        "paper": paper,
        "publishedAt": published,
        "title": title,
        "summary": summary,
        "thumbnail": f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{arxiv_id}.png",
        "numComments": comments,
        "submittedBy": {"_id": "63369da91ba5d5ece24118a4", "name": "akhaliq", "type": "user"},
        "isAuthorParticipating": False,
    }


def tuesday_papers(date: dt.date) -> list[dict[str, Any]]:
    """A small, realistic day: something for alice, bob and carol, and one for nobody."""
    return [
        hf_item(
            "2603.10001",
            "Consistent Video Generation with Diffusion Transformers",
            "We generate minute-long videos with a diffusion transformer that keeps characters "
            "consistent across shots. Human raters prefer our videos in 71% of comparisons.",
            date=date,
            upvotes=120,
            ai_keywords=["video generation", "diffusion transformer", "temporal consistency"],
            ai_summary="A diffusion transformer keeps characters consistent in long videos.",
            github="https://github.com/example/long-video",
        ),
        hf_item(
            "2603.10002",
            "Reward Model Ensembles Make RLHF Robust",
            "Reinforcement learning from human feedback overfits a single reward model. "
            "We train an ensemble and optimise its lower bound.",
            date=date,
            upvotes=64,
            ai_keywords=["RLHF", "reward model", "ensembles"],
        ),
        hf_item(
            "2603.10003",
            "Streaming Text-to-Speech on a Phone",
            "A 40M-parameter text-to-speech model that streams audio with 80 ms latency.",
            date=date,
            upvotes=31,
        ),
        hf_item(
            "2603.10004",
            "Sparse Attention Kernels for Long Contexts",
            "We write GPU kernels for block-sparse attention.",
            date=date,
            upvotes=12,
        ),
    ]
