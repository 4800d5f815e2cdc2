"""Deterministic synthetic subscribers and papers for the benchmark (no Django here).

Everything comes from one `random.Random(seed)`, so a seed always gives the same people,
the same papers and therefore the same digests.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bench import vocabulary as v

# Zipf exponents: subscribers follow fashion closely; papers a little less so (the long
# tail of topics gets papers too, even if few people follow it).
SUBSCRIBER_ZIPF = 1.0
PAPER_ZIPF = 0.7
# Added to the rank so the very top is not absurdly dominant.
ZIPF_OFFSET = 4

INTERESTS_MIN, INTERESTS_MAX = 3, 8
EXCLUSION_RATE = 0.06  # subscribers with one "-phrase"; a tenth of them have two
TITLE_CASE_RATE = 0.15  # topics typed "Diffusion Models" rather than "diffusion models"
WEEKLY_RATE = 0.15
MAX_PAPERS_CHOICES: tuple[tuple[int, int], ...] = ((10, 70), (5, 15), (3, 5), (20, 10))

ABSTRACT_WORDS_MIN, ABSTRACT_WORDS_MAX = 150, 250
SURVEY_RATE = 0.05
BENCHMARK_RATE = 0.08


class Weighted:
    """Draws from a fixed sequence with fixed weights, by bisecting cumulative weights."""

    def __init__(self, items: Sequence[str], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cumulative = list(itertools.accumulate(weights))

    @classmethod
    def zipf(cls, items: Sequence[str], exponent: float) -> Weighted:
        return cls(items, [1 / (rank + ZIPF_OFFSET) ** exponent for rank in range(len(items))])

    def draw(self, rng: random.Random) -> str:
        x = rng.random() * self.cumulative[-1]
        return self.items[bisect.bisect_right(self.cumulative, x)]

    def distinct(self, rng: random.Random, k: int) -> list[str]:
        """k different items (k must be well below len(items))."""
        chosen: list[str] = []
        while len(chosen) < k:
            item = self.draw(rng)
            if item.lower() not in (c.lower() for c in chosen):
                chosen.append(item)
        return chosen


SUBSCRIBER_TOPICS = Weighted.zipf(v.TOPICS, SUBSCRIBER_ZIPF)
PAPER_TOPICS = Weighted.zipf(v.TOPICS, PAPER_ZIPF)
EXCLUDED = Weighted.zipf(v.EXCLUSIONS, 1.5)


# --- Subscribers ------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSubscriber:
    email: str
    key: str
    topics: list[str]
    frequency: str  # "daily" or "weekly"
    max_papers: int


def _typed(phrase: str, rng: random.Random) -> str:
    """How a person might type the phrase: now and then Title Cased."""
    if rng.random() < TITLE_CASE_RATE:
        return " ".join(w if w[:1].isupper() else w.capitalize() for w in phrase.split())
    return phrase


def make_topics(rng: random.Random) -> list[str]:
    k = rng.randint(INTERESTS_MIN, INTERESTS_MAX)
    topics = [_typed(t, rng) for t in SUBSCRIBER_TOPICS.distinct(rng, k)]
    if rng.random() < EXCLUSION_RATE:
        n = 2 if rng.random() < 0.1 else 1
        topics.extend(f"-{phrase}" for phrase in EXCLUDED.distinct(rng, n))
    return topics


def make_subscribers(
    rng: random.Random, n: int, *, start: int = 0, weekly_rate: float = WEEKLY_RATE
) -> list[SyntheticSubscriber]:
    """n subscribers; `start` numbers their addresses, so batches made in turn stay unique."""
    sizes, size_weights = zip(*MAX_PAPERS_CHOICES, strict=True)
    people: list[SyntheticSubscriber] = []
    for i in range(start, start + n):
        first = rng.choice(v.FIRST_NAMES).lower()
        last = rng.choice(v.LAST_NAMES).lower()
        # The index keeps addresses unique; names keep them looking like addresses.
        email = f"{first}.{last}.{i}@{rng.choice(v.EMAIL_DOMAINS)}"
        people.append(
            SyntheticSubscriber(
                email=email,
                key=base64.urlsafe_b64encode(rng.randbytes(16)).decode().rstrip("="),
                topics=make_topics(rng),
                frequency="weekly" if rng.random() < weekly_rate else "daily",
                max_papers=rng.choices(sizes, weights=size_weights)[0],
            )
        )
    return people


@dataclass(frozen=True)
class Intent:
    """A "What are you looking for?" sentence and the topics it was written around."""

    sentence: str
    topics: tuple[str, ...]


def make_intents(rng: random.Random, n: int) -> list[Intent]:
    """n distinct sentences from INTENT_TEMPLATES, on topics weighted as subscribers' are."""
    intents: list[Intent] = []
    seen: set[str] = set()
    while len(intents) < n:
        template = rng.choice(v.INTENT_TEMPLATES)
        t1, t2 = SUBSCRIBER_TOPICS.distinct(rng, 2)
        sentence = template.format(t1=t1, t2=t2)
        if sentence not in seen and len(sentence) <= 300:  # Subscriber.intent's max_length
            seen.add(sentence)
            used = (t1, t2) if "{t2}" in template else (t1,)
            intents.append(Intent(sentence=sentence, topics=used))
    return intents


class IntentPicker:
    """Gives a subscriber a sentence from the pool, mostly one about a topic they typed."""

    def __init__(self, pool: Sequence[Intent], on_topic: float = 0.8) -> None:
        self.pool = list(pool)
        self.on_topic = on_topic
        self.by_topic: dict[str, list[Intent]] = {}
        for intent in self.pool:
            for topic in intent.topics:
                self.by_topic.setdefault(topic.lower(), []).append(intent)

    def pick(self, rng: random.Random, topics: Sequence[str]) -> Intent:
        if rng.random() < self.on_topic:
            near = [i for t in topics for i in self.by_topic.get(t.lower(), [])]
            if near:
                return rng.choice(near)
        return rng.choice(self.pool)


# --- Papers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticPaper:
    arxiv_id: str
    title: str
    abstract: str
    authors: list[str]
    ai_keywords: list[str]
    ai_summary: str
    upvotes: int
    num_comments: int
    github_repo: str
    github_stars: int | None
    project_page: str
    published_at: dt.datetime


def title_case(phrase: str) -> str:
    words = phrase.split()
    return " ".join(
        w if w[:1].isupper() or (i and w in v.SMALL_WORDS) else w[:1].upper() + w[1:]
        for i, w in enumerate(words)
    )


def _model_name(rng: random.Random) -> str:
    return rng.choice(v.NAME_HEADS) + rng.choice(v.NAME_TAILS)


def _title(rng: random.Random, name: str, topics: Sequence[str]) -> str:
    t1, t2, t3 = (title_case(t) for t in topics[:3])
    roll = rng.random()
    if roll < SURVEY_RATE:
        template = v.SURVEY_TITLE
    elif roll < SURVEY_RATE + BENCHMARK_RATE:
        template = v.BENCHMARK_TITLE
    else:
        template = rng.choice(v.TITLE_TEMPLATES)
    adj = rng.choice(v.TITLE_ADJECTIVES)
    return template.format(name=name, adj=adj, t1=t1, t2=t2, t3=t3)


def _abstract(rng: random.Random, name: str, topics: Sequence[str]) -> str:
    target = rng.randint(ABSTRACT_WORDS_MIN, ABSTRACT_WORDS_MAX)
    t1, t2, t3 = topics[:3]
    slots = {
        "t1": t1,
        "T1": t1[:1].upper() + t1[1:],
        "t2": t2,
        "t3": t3,
        "name": name,
        "n": rng.randint(5, 500),
        "k": rng.randint(3, 20),
        "p": round(rng.uniform(1.5, 18.0), 1),
        "x": rng.randint(2, 10),
    }
    sentences = [rng.choice(v.OPENINGS), rng.choice(v.METHODS)]
    details = rng.sample(v.DETAILS, len(v.DETAILS))
    fillers = rng.sample(v.FILLERS, len(v.FILLERS))
    results = rng.choice(v.RESULTS)
    closing = rng.choice(v.CLOSINGS)

    def words() -> int:
        return sum(len(s.split()) for s in sentences) + len((results + " " + closing).split())

    # Topic-bearing details first, then generic filler, until the abstract is long enough.
    for extra in details + fillers:
        if words() >= target:
            break
        sentences.append(extra)
    sentences.append(results)
    if closing:
        sentences.append(closing)
    # Extra topics (the fourth onwards) turn up in passing, as related work does.
    for extra_topic in topics[3:]:
        at = rng.randint(2, len(sentences) - 1)
        sentences.insert(at, f"This also has implications for {extra_topic}.")
    return " ".join(s.format(**slots) for s in sentences)


_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def longer_sentences(abstract: str) -> str:
    """The abstract with every two sentences joined into one ("…; and …").

    The generated sentences are short (about 10 words; real abstracts on HF have about
    8 sentences of 20-25 words), and the matcher embeds each sentence: joined, a paper
    has as many sentences as a real one, and so as many vectors.
    """
    parts = _SENTENCE_BREAK.split(abstract)
    joined: list[str] = []
    for i in range(0, len(parts), 2):
        pair = parts[i : i + 2]
        if len(pair) == 2:
            first, second = pair
            if second[1:2].islower():  # "The model…" -> "the model…"; "LLMs…" stays
                second = second[0].lower() + second[1:]
            joined.append(f"{first.rstrip('.!?')}; {second}")
        else:
            joined.append(pair[0])
    return " ".join(joined)


def _summary(name: str, topics: Sequence[str]) -> str:
    return f"{name} improves {topics[0]} by combining it with {topics[1]}, with strong results."


def make_papers(rng: random.Random, n: int, date: dt.date) -> list[SyntheticPaper]:
    papers: list[SyntheticPaper] = []
    prefix = f"{date:%y%m}"
    for i in range(n):
        topics = PAPER_TOPICS.distinct(rng, rng.randint(3, 6))
        name = _model_name(rng)
        keywords = [t.lower() for t in topics] + rng.sample(v.GENERIC_KEYWORDS, rng.randint(1, 3))
        # A trending list: a few papers draw most of the upvotes.
        upvotes = min(int(rng.paretovariate(1.3) * 6), 900)
        has_code = rng.random() < 0.6
        papers.append(
            SyntheticPaper(
                arxiv_id=f"{prefix}.{10000 + i * 37 + rng.randint(0, 36):05d}",
                title=_title(rng, name, topics),
                abstract=_abstract(rng, name, topics),
                authors=[
                    f"{rng.choice(v.FIRST_NAMES)} {rng.choice(v.LAST_NAMES)}"
                    for _ in range(rng.randint(2, 14))
                ],
                ai_keywords=keywords,
                ai_summary=_summary(name, topics) if rng.random() < 0.8 else "",
                upvotes=upvotes,
                num_comments=rng.randint(0, max(1, upvotes // 10)),
                github_repo=f"https://github.com/example-lab/{name.lower()}" if has_code else "",
                github_stars=rng.randint(5, 20_000) if has_code else None,
                project_page=f"https://{name.lower()}.example.io" if rng.random() < 0.3 else "",
                published_at=dt.datetime.combine(
                    date - dt.timedelta(days=1), dt.time(17, rng.randint(0, 59)), tzinfo=dt.UTC
                ),
            )
        )
    return papers
