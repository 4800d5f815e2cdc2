"""Keyword phrases: which papers a phrase finds, and how the scorer ranks and explains them.

The scorer here has no background papers, so it ranks on keyword evidence alone (as on a
new install's first day): where a phrase matched (title > keywords > abstract), upvotes
breaking ties.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from digest.matching.embedding import DIMENSIONS
from digest.matching.keywords import PaperIndex, Topics, phrase_stems
from digest.matching.readers import Reader
from digest.matching.scorer import Background, EditionScorer, PaperSet
from digest.matching.sentences import PaperVectors
from tests.fake_papers import FakePaper as P

DIFFUSION_TITLE = P(
    1,
    "Fast Sampling for Latent Diffusion Models",
    "We speed up image generation without retraining.",
    ["latent diffusion", "sampling"],
    upvotes=12,
)
DIFFUSION_ABSTRACT = P(
    2,
    "Editing Photos with Words",
    "Building on text-guided diffusion, we let users edit real photographs by describing "
    "the change they want, and we keep the rest of the picture intact.",
    ["image editing"],
    upvotes=80,
)
DIFFUSION_KEYWORDS = P(
    3, "Generating Worlds in Real Time", "A generative world model.", ["diffusion models"], 5
)
RL_SURVEY = P(
    4,
    "A Survey of Reinforcement Learning for Language Models",
    "We review reward modelling and policy optimisation for LLMs.",
    upvotes=200,
)
RL_PAPER = P(
    5,
    "Reinforcement Learning from Verifiable Rewards Improves Math Reasoning",
    "We train a policy with reinforcement learning on maths problems.",
    upvotes=30,
)
SPEECH = P(6, "Streaming Text-to-Speech with Tiny Latency", "A TTS model for phones.", upvotes=3)

EDITION = [DIFFUSION_TITLE, DIFFUSION_ABSTRACT, DIFFUSION_KEYWORDS, RL_SURVEY, RL_PAPER, SPEECH]


def keyword_scorer(papers: list[P]) -> EditionScorer:
    """A scorer of `papers` without background: keyword evidence alone."""
    vectors = np.zeros((len(papers), DIMENSIONS), dtype=np.float32)
    none = np.zeros((0, DIMENSIONS), dtype=np.float32)
    edition = PaperSet(
        paper_ids=[p.id for p in papers],
        index=PaperIndex.build(papers),
        vectors=PaperVectors(vectors, vectors, np.arange(len(papers))),
        upvotes=[p.upvotes for p in papers],
    )
    nothing = PaperVectors(none, none, np.zeros(0, dtype=np.int64))
    return EditionScorer(edition, Background(PaperIndex.build(papers), nothing))


def rank(
    topics: list[str],
    *,
    limit: int = 10,
    papers: list[P] = EDITION,
    sent: frozenset[int] = frozenset(),
) -> list[Any]:
    reader = Reader(key=1, topics=topics, limit=limit, exclude_paper_ids=sent)
    return keyword_scorer(papers).rank(reader)


def ids(matches: list[Any]) -> list[int]:
    return [m.paper_id for m in matches]


def fields(phrase: str) -> dict[int, str]:
    """Paper id -> the best field the phrase is in."""
    hits = PaperIndex.build(EDITION).lookup(phrase_stems(phrase))
    return {paper_id: hit.field for paper_id, hit in hits.items()}


def test_a_phrase_matches_consecutive_words_with_stemming_and_any_case() -> None:
    # "diffusion model" (singular) finds "Diffusion Models" in a title and a keyword.
    assert fields("Diffusion Model") == {1: "title", 3: "keywords"}
    assert ids(rank(["Diffusion Model"])) == [1, 3]
    # Words that appear but not next to each other are not the phrase.
    assert fields("speech latency") == {}
    assert rank(["speech latency"]) == []


def test_hyphenated_phrases_match_their_words() -> None:
    assert ids(rank(["text to speech"])) == [6]
    assert ids(rank(["text-to-speech"])) == [6]


def test_a_phrase_counts_in_its_best_field() -> None:
    # In the keywords of paper 1 and its title: the title counts.
    assert fields("latent diffusion") == {1: "title"}
    assert fields("diffusion") == {1: "title", 2: "abstract", 3: "keywords"}


def test_title_ranks_above_keywords_above_abstract_then_upvotes() -> None:
    # Paper 2 has by far the most upvotes but matched only in its abstract.
    assert ids(rank(["diffusion"])) == [1, 3, 2]
    # Both in the title: the survey's 200 upvotes put it before paper 5's 30.
    assert ids(rank(["reinforcement learning"])) == [4, 5]


def test_a_paper_counts_its_best_phrase_not_how_many_matched() -> None:
    # Paper 5 has both phrases in its title, the survey one: equal evidence, and upvotes
    # decide (the first keyword ranker added the phrases up; the scorer takes the best).
    assert ids(rank(["reinforcement learning", "reasoning"])) == [4, 5]


def test_an_exclusion_removes_papers_that_contain_it() -> None:
    assert ids(rank(["reinforcement learning", "-survey"])) == [5]


def test_top_n_and_already_sent_papers_are_left_out() -> None:
    assert ids(rank(["diffusion"], limit=2)) == [1, 3]
    assert ids(rank(["diffusion"], sent=frozenset({1}))) == [3, 2]


def test_the_reason_names_interest_field_and_highlights_the_words() -> None:
    [title_match] = rank(["latent diffusion model"], limit=1)
    reason = title_match.reasons[0]
    assert reason.topic == "latent diffusion model"
    assert reason.field == "title"
    assert (reason.before, reason.match, reason.after) == (
        "Fast Sampling for ",
        "Latent Diffusion Models",
        "",
    )

    [abstract_match] = rank(["photograph"], limit=1)
    reason = abstract_match.reasons[0]
    assert reason.field == "abstract"
    assert reason.match == "photographs"
    # Near the start of the abstract: no leading ellipsis; the rest is cut on a word.
    assert reason.before == "Building on text-guided diffusion, we let users edit real "
    assert reason.after == " by describing the change they want, and we keep the rest of the…"

    [late_match] = rank(["picture"], limit=1)
    reason = late_match.reasons[0]
    assert reason.before.startswith("…") and not reason.before.startswith("… ")
    assert reason.after == " intact."


def test_a_keyword_reason_shows_the_one_keyword_that_matched() -> None:
    paper = P(9, "A World Model", "", ["world models", "video diffusion"])
    [match] = rank(["diffusion"], limit=1, papers=[paper])
    reason = match.reasons[0]
    assert reason.field == "keywords"
    assert reason.before + reason.match + reason.after == "video diffusion"


def test_every_matching_interest_is_a_reason_best_first() -> None:
    [match] = rank(["policy", "reasoning"], limit=1)
    assert match.paper_id == 5
    assert [(r.topic, r.field) for r in match.reasons] == [
        ("reasoning", "title"),
        ("policy", "abstract"),
    ]


def test_interests_parse_wanted_and_excluded() -> None:
    parsed = Topics.parse(["Diffusion", " -Survey ", "-", "  "])
    assert parsed.wanted == [("Diffusion", ("diffus",))]
    assert parsed.excluded == [("survey",)]
    assert phrase_stems("LLMs, agents!") == ("llms", "agent")


def test_scraped_markup_is_just_text_to_the_matcher() -> None:
    paper = P(7, "<script>alert(1)</script> Diffusion for Audio")
    [match] = rank(["diffusion"], limit=1, papers=[paper])
    assert match.reasons[0].before == "<script>alert(1)</script> "
