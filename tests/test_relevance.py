"""Relevance: each signal, and how they combine, on small hand-made papers and vectors.

Vectors here are made by hand (no model), so each test controls what is "close".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from digest.matching.embedding import DIMENSIONS, normalise
from digest.matching.keywords import PaperIndex
from digest.matching.readers import Reader
from digest.matching.scorer import MIN_BACKGROUND, Background, EditionScorer, PaperSet
from digest.matching.sentences import PaperVectors
from digest.matching.words import intent_terms_of
from tests.fake_papers import FakePaper as P

RNG = np.random.default_rng(7)


def direction(seed: int) -> np.ndarray[Any, Any]:
    return normalise(np.random.default_rng(seed).normal(size=DIMENSIONS))


# Two topics, as directions in the vector space; noise stands for unrelated papers.
VIDEO = direction(1)
SPEECH = direction(2)


def near(topic: np.ndarray[Any, Any], closeness: float, seed: int) -> np.ndarray[Any, Any]:
    noise = direction(1000 + seed)
    return normalise(closeness * topic + (1 - closeness) * noise)


BACKGROUND = [
    P(100 + i, f"Unrelated work number {i}", "We benchmark a model on reasoning tasks.")
    for i in range(60)
]
BACKGROUND_VECTORS = np.vstack([near(direction(5000 + i), 0.9, i) for i in range(60)])


def scorer(
    papers: list[P], vectors: list[np.ndarray[Any, Any]], *, background: int = 60
) -> EditionScorer:
    bg_papers = BACKGROUND[:background] + papers
    bg_vectors = np.vstack([BACKGROUND_VECTORS[:background], *vectors])
    # One "sentence" per paper: its own vector, so both views of a paper agree.
    edition = PaperSet(
        paper_ids=[p.id for p in papers],
        index=PaperIndex.build(papers),
        vectors=PaperVectors(np.vstack(vectors), np.vstack(vectors), np.arange(len(vectors))),
        upvotes=[p.upvotes for p in papers],
    )
    usual = Background(
        index=PaperIndex.build(bg_papers),
        vectors=PaperVectors(bg_vectors, bg_vectors, np.arange(len(bg_vectors))),
    )
    return EditionScorer(edition, usual)


VIDEO_QA = P(1, "Answering Questions about Long Videos", "A video question answering model.")
TTS = P(2, "Streaming Speech Synthesis", "A small text-to-speech model.")
BENCH = P(3, "A Reasoning Benchmark for Agents", "We benchmark reasoning of LLM agents.")
EDITION = [VIDEO_QA, TTS, BENCH]
EDITION_VECTORS = [near(VIDEO, 0.8, 1), near(SPEECH, 0.8, 2), near(direction(99), 0.8, 3)]


def ids(matches: list[Any]) -> list[int]:
    return [m.paper_id for m in matches]


def test_a_sentence_close_to_a_paper_brings_it_with_that_reason() -> None:
    s = scorer(EDITION, EDITION_VECTORS)
    reader = Reader(key=1, topics=["long-form comprehension"], limit=10, intent=VIDEO)
    [match] = s.rank(reader)
    assert match.paper_id == VIDEO_QA.id
    assert match.reasons[0].field == "described"


def test_a_specific_phrase_in_the_title_is_strong_evidence() -> None:
    s = scorer(EDITION, EDITION_VECTORS)
    phrase = {"speech synthesis": SPEECH}
    reader = Reader(key=1, topics=["speech synthesis"], limit=10, phrase_vectors=phrase)
    [match] = s.rank(reader)
    assert match.paper_id == TTS.id
    assert (match.reasons[0].field, match.reasons[0].match) == ("title", "Speech Synthesis")


def test_a_generic_word_found_everywhere_is_not_enough() -> None:
    # "reasoning" is in every background abstract: it says little about a paper.
    s = scorer(EDITION, EDITION_VECTORS)
    reader = Reader(
        key=1, topics=["reasoning"], limit=10, phrase_vectors={"reasoning": direction(42)}
    )
    assert s.specificity(("reason",)) < 0.1
    assert s.rank(reader) == []


def test_nothing_relevant_means_silence() -> None:
    s = scorer(EDITION, EDITION_VECTORS)
    reader = Reader(key=1, topics=["protein folding"], limit=10, intent=direction(77))
    assert s.rank(reader) == []


def test_exclusions_and_papers_already_sent_never_come_back() -> None:
    s = scorer(EDITION, EDITION_VECTORS)
    video = {"video": VIDEO}
    assert ids(s.rank(Reader(key=1, topics=["video"], limit=10, phrase_vectors=video))) == [1]
    excluded = Reader(key=1, topics=["video", "-question"], limit=10, phrase_vectors=video)
    assert s.rank(excluded) == []
    sent = Reader(key=1, topics=["video"], limit=10, phrase_vectors=video, exclude_paper_ids={1})
    assert s.rank(sent) == []


def test_a_liked_paper_pulls_in_its_neighbours_and_says_so() -> None:
    s = scorer(EDITION, EDITION_VECTORS)
    liked = np.vstack([near(SPEECH, 0.95, 50)])
    reader = Reader(
        key=1,
        topics=["audio"],
        limit=10,
        phrase_vectors={"audio": near(SPEECH, 0.3, 60)},  # related, not the same
        liked=liked,
        liked_titles=["Whisper-Style Speech Recognition"],
    )
    [match] = s.rank(reader)
    assert match.paper_id == TTS.id
    assert (match.reasons[0].field, match.reasons[0].topic) == (
        "liked",
        "Whisper-Style Speech Recognition",
    )


def test_a_disliked_paper_pushes_its_neighbours_out() -> None:
    s = scorer(EDITION, EDITION_VECTORS)
    video = {"video": VIDEO}
    disliked = np.vstack([near(VIDEO, 0.95, 51)])
    reader = Reader(key=1, topics=["video"], limit=10, phrase_vectors=video, disliked=disliked)
    assert s.rank(reader) == []


def test_the_limit_keeps_the_best() -> None:
    papers = [P(10 + i, f"Video Understanding Part {i}", upvotes=i) for i in range(5)]
    vectors = [near(VIDEO, 0.8, 10 + i) for i in range(5)]
    s = scorer(papers, vectors)
    reader = Reader(
        key=1,
        topics=["video understanding"],
        limit=2,
        intent=VIDEO,
        intent_terms=intent_terms_of("Video understanding"),
    )
    assert len(s.rank(reader)) == 2


@pytest.mark.parametrize("background", [0, MIN_BACKGROUND - len(EDITION) - 1])
def test_with_few_papers_known_the_keywords_decide_alone(background: int) -> None:
    # A new install's first day: too few papers to say what is unusual.
    s = scorer(EDITION, EDITION_VECTORS, background=background)
    assert not s.use_meaning
    reader = Reader(key=1, topics=["reasoning"], limit=10, intent=VIDEO)
    assert ids(s.rank(reader)) == [BENCH.id]


def test_the_sentence_words_favour_papers_that_use_its_rarer_words() -> None:
    s = scorer(EDITION, EDITION_VECTORS)
    terms = intent_terms_of("Speech synthesis: text-to-speech models, and the speech they make")
    assert terms.count("speech") == 1  # distinct stemmed words, in order
    words = s.intent_word_scores(terms)
    assert int(np.argmax(words)) == EDITION.index(TTS)
    assert words[EDITION.index(TTS)] > 3  # far above the background papers
    # Words every background paper uses ("benchmark", "reasoning") tell papers apart little.
    generic = s.intent_word_scores(intent_terms_of("We benchmark reasoning"))
    assert np.ptp(generic) < np.ptp(words)
    assert not s.intent_word_scores(()).any()


def test_many_readers_at_once_rank_as_each_alone() -> None:
    """rank_many is rank for each subscriber: batching changes nothing a subscriber gets."""
    s = scorer(EDITION, EDITION_VECTORS)
    video = {"video": VIDEO}
    readers = [
        Reader(key=1, topics=["video"], limit=10, phrase_vectors=video),
        Reader(key=2, topics=["-survey"], limit=10),  # nothing wanted: nothing
        Reader(
            key=3,
            topics=["speech"],
            limit=10,
            intent=SPEECH,
            intent_terms=intent_terms_of("Speech synthesis"),
            phrase_vectors={"speech": SPEECH},
        ),
        Reader(key=4, topics=["video"], limit=10, phrase_vectors=video, liked=VIDEO[None]),
        Reader(key=5, topics=["Video"], limit=10, exclude_paper_ids={VIDEO_QA.id}),
    ]
    together = s.rank_many(readers)
    alone = [scorer(EDITION, EDITION_VECTORS).rank(r) for r in readers]
    assert [ids(m) for m in together] == [ids(m) for m in alone]
    assert ids(together[0]) == [VIDEO_QA.id] and together[1] == [] and together[4] == []
    assert ids(together[2]) == [TTS.id]


def test_the_summary_s_words_count_for_the_sentence_but_not_for_phrases() -> None:
    # HF's one-line summary names the topic plainly; the abstract may not use the word.
    plain = P(4, "A Streaming Decoder", "We decode audio frames with low latency.")
    summed = dataclasses.replace(plain, id=5, ai_summary="A streaming vocoder for speech.")
    vectors = [near(direction(7), 0.8, 4), near(direction(7), 0.8, 5)]
    s = scorer([plain, summed], vectors)
    words = s.intent_word_scores(intent_terms_of("Vocoders for speech"))
    assert words[1] > words[0] + 1
    assert s.index.lookup(("vocod",)) == {}  # a phrase is matched in title, keywords, abstract


def test_an_edition_without_summaries_yet_is_weighed_against_the_usual_length() -> None:
    # The day's papers often lack HF's summary and keywords when matched: a paper's words
    # weigh the same in the edition as among the recent papers, whatever the others' length.
    paper = P(6, "Speech Synthesis at Scale", "A text-to-speech model.")
    wordy = [
        P(10 + i, f"Other {i}", "A model.", ai_summary="A long summary. " * 8) for i in range(9)
    ]
    s = scorer([paper], [near(SPEECH, 0.8, 6)])
    s.background_index = PaperIndex.build([*BACKGROUND, *wordy, paper])
    s.intent_word_scores(("speech",))
    assert s._words is not None
    row = s._words.rows[s._words.slots["speech"]]
    assert row[0] == pytest.approx(row[-1])  # in the edition, and as the background's last
