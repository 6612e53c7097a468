"""Exact and near-duplicate detection that streams: only compact 64-bit keys are kept, never the records.

Near duplicates: MinHash signatures over word 3-grams (CJK: character 3-grams) via datasketch, banded for LSH
with the band/row split datasketch picks for the threshold; a record whose band key was seen before is a
near duplicate of an earlier kept record (the standard LSH rule, as in BigCode's and text-dedup's pipelines).
Memory: 8 bytes per key (1 key per record for exact, `bands` keys for near), in a sorted numpy array.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import xxhash
from datasketch import MinHash, MinHashLSH

from seektune.text import HAN, KANA_HANGUL

_TOKEN = re.compile(f"[{HAN}{KANA_HANGUL}]|\\w+", re.UNICODE)


class KeyIndex:
    """A set of uint64 keys: one sorted numpy array plus a pending Python set of at most `buffer` keys,
    merged in by binary-search insertion. Peak memory is about twice the array (during a merge) plus the
    fixed buffer, so it grows with the keys only (8 bytes each), never with the records."""

    def __init__(self, buffer: int = 1 << 17) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._pending: set[int] = set()
        self._buffer = buffer

    def __len__(self) -> int:
        return self._sorted.size + len(self._pending)

    def contains_any(self, keys: np.ndarray) -> bool:
        if any(int(k) in self._pending for k in keys):
            return True
        if not self._sorted.size:
            return False
        pos = np.minimum(np.searchsorted(self._sorted, keys), self._sorted.size - 1)
        return bool((self._sorted[pos] == keys).any())

    def add(self, keys: np.ndarray) -> None:
        self._pending.update(int(k) for k in keys)
        if len(self._pending) >= self._buffer:
            self._merge()

    def _merge(self) -> None:
        """Insert the pending keys into the sorted array (a repeated key is harmless for membership)."""
        fresh = np.fromiter(self._pending, dtype=np.uint64, count=len(self._pending))
        fresh.sort()
        self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, fresh), fresh)
        self._pending.clear()

    @property
    def nbytes(self) -> int:
        return self._sorted.nbytes + 80 * len(self._pending)


def normalised(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def exact_key(text: str) -> np.ndarray:
    return np.array([xxhash.xxh3_64_intdigest(normalised(text).encode("utf-8"))], dtype=np.uint64)


def shingles(text: str, n: int = 3) -> list[bytes]:
    tokens = _TOKEN.findall(normalised(text))
    if len(tokens) <= n:
        return [" ".join(tokens).encode("utf-8")]
    return [" ".join(tokens[i:i + n]).encode("utf-8") for i in range(len(tokens) - n + 1)]


class NearDuplicateKeys:
    """MinHash + LSH band keys for a text; two texts with Jaccard similarity above `threshold` share a band
    key with high probability, texts far below it almost never do."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, ngram: int = 3, seed: int = 1):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"near-duplicate threshold must be between 0 and 1, got {threshold}")
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.bands, self.rows = lsh.b, lsh.r
        self.num_perm, self.ngram, self.seed = num_perm, ngram, seed
        template = MinHash(num_perm=num_perm, seed=seed)
        self._permutations, self._scheme = template.permutations, template.scheme

    def signature(self, text: str) -> MinHash:
        m = MinHash(num_perm=self.num_perm, hashfunc=xxhash.xxh32_intdigest, permutations=self._permutations,
                    scheme=self._scheme)
        m.update_batch(shingles(text, self.ngram))
        return m

    def keys(self, text: str) -> np.ndarray:
        values = self.signature(text).hashvalues
        r = self.rows
        return np.array([xxhash.xxh3_64_intdigest(values[b * r:(b + 1) * r].tobytes(), seed=b)
                         for b in range(self.bands)], dtype=np.uint64)


def in_group(keys: np.ndarray, group: str) -> np.ndarray:
    """Keys that can only meet keys of the same group (a record's images: the same question about two other
    images is no duplicate)."""
    return keys ^ np.uint64(xxhash.xxh3_64_intdigest(group.encode("utf-8"))) if group else keys


class Deduplicator:
    """First occurrence wins. `check(text)` says why a text is a duplicate ("exact" / "near") or None; `group`
    (a record's image references) keeps records of different images apart."""

    def __init__(self, exact: bool = True, near: bool = True, threshold: float = 0.8, ngram: int = 3):
        self.exact = KeyIndex() if exact else None
        self.near = KeyIndex() if near else None
        self.near_keys = NearDuplicateKeys(threshold, ngram=ngram) if near else None

    def check(self, text: str, group: str = "") -> str | None:
        if self.exact is not None:
            key = in_group(exact_key(text), group)
            if self.exact.contains_any(key):
                return "exact duplicate"
            self.exact.add(key)
        if self.near is not None:
            keys = in_group(self.near_keys.keys(text), group)
            if self.near.contains_any(keys):
                return "near duplicate"
            self.near.add(keys)
        return None

    def seen(self, text: str) -> str | None:
        """Like check, without remembering the text (for comparing against a fixed reference set)."""
        if self.exact is not None and self.exact.contains_any(exact_key(text)):
            return "exact"
        if self.near is not None and self.near.contains_any(self.near_keys.keys(text)):
            return "near"
        return None

    def remember(self, text: str) -> None:
        if self.exact is not None:
            self.exact.add(exact_key(text))
        if self.near is not None:
            self.near.add(self.near_keys.keys(text))
