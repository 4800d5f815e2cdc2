"""Matching: which papers a reader gets, in which order, and why."""

from __future__ import annotations

from digest.matching.keywords import Interests, PaperIndex, match_papers, phrase_stems
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


def ids(matches: list) -> list[int]:
    return [m.paper_id for m in matches]


def test_a_phrase_matches_consecutive_words_with_stemming_and_any_case() -> None:
    index = PaperIndex.build(EDITION)
    # "diffusion model" (singular) finds "Diffusion Models" in a title and a keyword.
    found = ids(match_papers(index, ["Diffusion Model"], limit=10))
    assert found == [1, 3]
    # Words that appear but not next to each other are not the phrase.
    assert match_papers(index, ["speech latency"], limit=10) == []


def test_hyphenated_phrases_match_their_words() -> None:
    index = PaperIndex.build(EDITION)
    assert ids(match_papers(index, ["text to speech"], limit=10)) == [6]
    assert ids(match_papers(index, ["text-to-speech"], limit=10)) == [6]


def test_title_ranks_above_keywords_above_abstract_then_upvotes() -> None:
    index = PaperIndex.build(EDITION)
    # Paper 2 has by far the most upvotes but matched only in its abstract.
    assert ids(match_papers(index, ["diffusion"], limit=10)) == [1, 3, 2]


def test_more_interests_matched_rank_higher() -> None:
    index = PaperIndex.build(EDITION)
    found = ids(match_papers(index, ["reinforcement learning", "reasoning"], limit=10))
    # Paper 5 matches both interests in its title; the survey only one.
    assert found == [5, 4]


def test_an_exclusion_removes_papers_that_contain_it() -> None:
    index = PaperIndex.build(EDITION)
    found = ids(match_papers(index, ["reinforcement learning", "-survey"], limit=10))
    assert found == [5]


def test_top_n_and_already_sent_papers_are_left_out() -> None:
    index = PaperIndex.build(EDITION)
    assert ids(match_papers(index, ["diffusion"], limit=2)) == [1, 3]
    assert ids(match_papers(index, ["diffusion"], limit=10, exclude_paper_ids={1})) == [3, 2]


def test_the_reason_names_interest_field_and_highlights_the_words() -> None:
    index = PaperIndex.build(EDITION)
    [title_match] = match_papers(index, ["latent diffusion model"], limit=1)
    reason = title_match.reasons[0]
    assert reason.interest == "latent diffusion model"
    assert reason.field == "title"
    assert (reason.before, reason.match, reason.after) == (
        "Fast Sampling for ",
        "Latent Diffusion Models",
        "",
    )

    [abstract_match] = match_papers(index, ["photograph"], limit=1)
    reason = abstract_match.reasons[0]
    assert reason.field == "abstract"
    assert reason.match == "photographs"
    # Near the start of the abstract: no leading ellipsis; the rest is cut on a word.
    assert reason.before == "Building on text-guided diffusion, we let users edit real "
    assert reason.after == " by describing the change they want, and we keep the rest of the…"

    [late_match] = match_papers(index, ["picture"], limit=1)
    reason = late_match.reasons[0]
    assert reason.before.startswith("…") and not reason.before.startswith("… ")
    assert reason.after == " intact."


def test_a_keyword_reason_shows_the_one_keyword_that_matched() -> None:
    index = PaperIndex.build([P(9, "A World Model", "", ["world models", "video diffusion"])])
    [match] = match_papers(index, ["diffusion"], limit=1)
    reason = match.reasons[0]
    assert reason.field == "keywords"
    assert reason.before + reason.match + reason.after == "video diffusion"


def test_every_matching_interest_is_a_reason_best_first() -> None:
    index = PaperIndex.build(EDITION)
    [match] = match_papers(index, ["policy", "reasoning"], limit=1)
    assert [(r.interest, r.field) for r in match.reasons] == [
        ("reasoning", "title"),
        ("policy", "abstract"),
    ]


def test_interests_parse_wanted_and_excluded() -> None:
    parsed = Interests.parse(["Diffusion", " -Survey ", "-", "  "])
    assert parsed.wanted == [("Diffusion", ("diffus",))]
    assert parsed.excluded == [("survey",)]
    assert phrase_stems("LLMs, agents!") == ("llms", "agent")


def test_scraped_markup_is_just_text_to_the_matcher() -> None:
    index = PaperIndex.build([P(7, "<script>alert(1)</script> Diffusion for Audio")])
    [match] = match_papers(index, ["diffusion"], limit=1)
    assert match.reasons[0].before == "<script>alert(1)</script> "
