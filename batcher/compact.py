"""Compact in-memory structures, for counting over millions of items in bounded memory.

Nothing here knows about reports: a histogram that answers quantiles, an int-to-int table
and a set of 64-bit digests kept in typed arrays, and an interner that turns a capped number
of names into small ints.
"""

from __future__ import annotations

import math
from array import array
from typing import Any


class LogHistogram:
    """Quantiles of non-negative numbers in fixed memory, within ``relative_error`` of exact.

    A log-bucketed histogram (the DDSketch idea): bucket ``i`` counts the values in
    ``(gamma**(i-1), gamma**i]`` and answers with the bucket's midpoint, so every answer is
    within ``relative_error`` of the exact nearest-rank value. Durations from 1 µs to a day
    need under 2,000 buckets, however many values are added.

    >>> h = LogHistogram()
    >>> for v in range(1, 101):
    ...     h.add(float(v))
    >>> abs(h.quantile(0.9) - 90) <= 0.9
    True
    """

    def __init__(self, relative_error: float = 0.01) -> None:
        self._gamma = (1 + relative_error) / (1 - relative_error)
        self._log_gamma = math.log(self._gamma)
        self._buckets: dict[int, int] = {}
        self._zeros = 0  # values too small to have a logarithm worth keeping
        self.count = 0
        self.total = 0.0
        self.max: float | None = None

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if self.max is None or value > self.max:
            self.max = value
        if value < 1e-9:
            self._zeros += 1
            return
        index = math.ceil(math.log(value) / self._log_gamma)
        self._buckets[index] = self._buckets.get(index, 0) + 1

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q`` quantile (``0 < q <= 1``), or None when empty."""
        if not self.count:
            return None
        # round() keeps 0.9 * 10 from becoming rank 10 through float noise.
        rank = max(1, math.ceil(round(q * self.count, 9)))
        seen = self._zeros
        if rank <= seen:
            return 0.0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                estimate = 2 * self._gamma**index / (self._gamma + 1)
                return min(estimate, self.max) if self.max is not None else estimate
        return self.max


class KeyTable:
    """64-bit key digest to row number, in typed arrays.

    A dict of 64-bit ints costs ~130 bytes per key (two int objects plus its table); this
    open-addressing table (linear probing, at most half full) costs 24-48 bytes per key,
    which is what lets millions of keys be held in bounded memory.

    >>> table = KeyTable()
    >>> table.setdefault(0x9E3779B97F4A7C15, 0)
    0
    >>> table.setdefault(0x9E3779B97F4A7C15, 1), len(table)
    (0, 1)
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self._mask = capacity - 1  # capacity is a power of two
        self._keys = array("Q", bytes(8 * capacity))  # 0 = empty slot
        self._rows = array("I", bytes(4 * capacity))  # rows < 2**32
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def setdefault(self, digest: int, row: int) -> int:
        """The row stored for ``digest``; if there is none, store ``row`` and return it."""
        digest = digest or 1  # 0 marks an empty slot (a 2**-64 chance of merging two keys)
        keys, mask = self._keys, self._mask
        slot = digest & mask
        while True:
            found = keys[slot]
            if found == digest:
                return self._rows[slot]
            if found == 0:
                break
            slot = (slot + 1) & mask
        keys[slot] = digest
        self._rows[slot] = row
        self._size += 1
        if self._size * 2 > mask:
            self._grow()
        return row

    def _grow(self) -> None:
        old = zip(self._keys, self._rows, strict=True)
        self._alloc((self._mask + 1) * 2)
        for digest, row in old:
            if digest:
                self.setdefault(digest, row)


class DigestSet:
    """A set of 64-bit digests in one typed array.

    A Python set of such ints costs ~70 bytes per member (an int object and its slot); this
    open-addressing table (linear probing, at most half full) costs 16-32, which is what
    keeps a million-entry manifest's duplicate check small.

    >>> seen = DigestSet()
    >>> seen.add(0x9E3779B97F4A7C15), seen.add(0x9E3779B97F4A7C15), len(seen)
    (True, False, 1)
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self._mask = capacity - 1  # capacity is a power of two
        self._keys = array("Q", bytes(8 * capacity))  # 0 = empty slot
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _slot(self, digest: int) -> int:
        keys, mask = self._keys, self._mask
        slot = digest & mask
        while keys[slot] not in (0, digest):
            slot = (slot + 1) & mask
        return slot

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, int):
            return False
        digest = digest or 1  # 0 marks an empty slot (a 2**-64 chance of merging two keys)
        return self._keys[self._slot(digest)] == digest

    def add(self, digest: int) -> bool:
        """Add ``digest``; True if it was not there yet."""
        digest = digest or 1
        slot = self._slot(digest)
        if self._keys[slot] == digest:
            return False
        self._keys[slot] = digest
        self._size += 1
        if self._size * 2 > self._mask:
            old = self._keys
            self._alloc((self._mask + 1) * 2)
            for member in old:
                if member:
                    self._keys[self._slot(member)] = member
                    self._size += 1
        return True


class Interner:
    """Names to small ints, at most ``cap`` of them; the rest share one overflow index.

    ``names[i]`` is the name behind index ``i``; the overflow index's name is None.

    >>> intern = Interner(cap=2)
    >>> [intern(name) for name in ("a", "b", "a", "c", "d")], intern.names
    ([0, 1, 0, 2, 2], ['a', 'b', None])
    """

    def __init__(self, cap: int) -> None:
        self._index: dict[Any, int] = {}
        self.names: list[Any] = []
        self._cap = cap
        self._other: int | None = None

    def __call__(self, name: Any) -> int:
        index = self._index.get(name)
        if index is None:
            if len(self.names) >= self._cap:
                if self._other is None:
                    self._other = len(self.names)
                    self.names.append(None)  # marks the overflow bucket
                return self._other
            index = self._index[name] = len(self.names)
            self.names.append(name)
        return index
