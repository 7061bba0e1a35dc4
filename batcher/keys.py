"""The one digest of an entry's key, and compact tables of such digests.

An entry is known by ``(job_id, command)`` and a job by ``(project_id, job_id)``. Manifest
checking (duplicates), the runner (per-job ordering, resume) and every report reader
(latest line per entry) compare keys through these 64-bit digests, so millions of them fit
in typed arrays instead of sets of string tuples. :func:`key_digest` is BLAKE2b (the same
in every process); the summary and selection readers, whose tables never leave their
process, use :func:`local_key_digest` (Python's hash), which is several times cheaper.

>>> key_digest("job-1", "SUBMITVERIFYING") == key_digest("job-1", "SUBMITVERIFYING")
True
>>> key_digest("job-1", "SUBMITVERIFYING") == key_digest("job-1\\x00SUBMIT", "VERIFYING")
False
"""

from __future__ import annotations

from array import array
from hashlib import blake2b

__all__ = [
    "DigestSet",
    "KeyTable",
    "bytes_digest",
    "job_digest",
    "key_digest",
    "local_job_digest",
    "local_key_digest",
    "text_digest",
]


def text_digest(text: str) -> int:
    """A 64-bit digest of ``text`` (BLAKE2b, so stable across processes, unlike ``hash``).

    >>> text_digest("job-1") == text_digest("job-1")
    True
    """
    return bytes_digest(text.encode())


def bytes_digest(data: bytes) -> int:
    """:func:`text_digest` of text still in UTF-8 bytes (a report line as read).

    >>> bytes_digest("任务-1".encode()) == text_digest("任务-1")
    True
    """
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


def key_digest(job_id: str, command: str) -> int:
    """The digest of an entry's key ``(job_id, command)``."""
    # NUL cannot occur in either part (ids are [A-Za-z0-9_-], commands are known words),
    # so the joined text is unambiguous.
    return text_digest(f"{job_id}\x00{command}")


def job_digest(job_id: str, project_id: str | None = None) -> int:
    """The digest of a job: its id within its project (``None``: the run's project).

    >>> job_digest("job-1") == job_digest("job-1", None) != job_digest("job-1", "p2")
    True
    """
    return text_digest(f"{project_id or ''}\x00{job_id}")


def local_key_digest(job_id: str, command: str) -> int:
    """:func:`key_digest` for tables that live and die in one process: Python's own
    (randomised, 64-bit) string hash, several times cheaper than BLAKE2b, for readers that
    key a million report lines (summary, selection) and never compare digests with another
    process or with :func:`key_digest`'s.

    >>> local_key_digest("job-1", "SUBMITVERIFYING") == local_key_digest("job-1", "SUBMITVERIFYING")
    True
    """
    return (hash(f"{job_id}\x00{command}") & _MASK64) or 1


def local_job_digest(job_id: str, project_id: str | None = None) -> int:
    """:func:`job_digest`, process-local as :func:`local_key_digest` is."""
    return (hash(f"{project_id or ''}\x00{job_id}") & _MASK64) or 1


_MASK64 = (1 << 64) - 1


class KeyTable:
    """64-bit digest to a small non-negative int, in typed arrays.

    A dict of 64-bit ints costs ~130 bytes per key (two int objects plus its table); this
    open-addressing table (linear probing, at most half full) costs 24-48 bytes per key,
    which is what lets millions of keys be held in bounded memory.

    >>> table = KeyTable()
    >>> table.setdefault(0x9E3779B97F4A7C15, 0)
    0
    >>> table.setdefault(0x9E3779B97F4A7C15, 1), len(table)
    (0, 1)
    >>> table[0x9E3779B97F4A7C15] = 7
    >>> table.get(0x9E3779B97F4A7C15), table.get(42)
    (7, None)
    """

    __slots__ = ("_keys", "_mask", "_size", "_values")

    def __init__(self, capacity: int = 1024) -> None:
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self._mask = capacity - 1  # capacity is a power of two
        # Repeating a one-item array allocates once; array("Q", bytes(n)) held both copies.
        self._keys = array("Q", [0]) * capacity  # 0 = empty slot
        self._values = array("I", [0]) * capacity  # values < 2**32
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _slot(self, digest: int) -> int:
        keys, mask = self._keys, self._mask
        slot = digest & mask
        while True:
            found = keys[slot]
            if found == digest or found == 0:
                return slot
            slot = (slot + 1) & mask

    def get(self, digest: int, default: int | None = None) -> int | None:
        digest = digest or 1  # 0 marks an empty slot (a 2**-64 chance of merging two keys)
        slot = self._slot(digest)
        return self._values[slot] if self._keys[slot] == digest else default

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, int) and self.get(digest) is not None

    def setdefault(self, digest: int, value: int) -> int:
        """The value stored for ``digest``; if there is none, store ``value`` and return it."""
        digest = digest or 1
        slot = self._slot(digest)
        if self._keys[slot] == digest:
            return self._values[slot]
        self._insert(slot, digest, value)
        return value

    def __setitem__(self, digest: int, value: int) -> None:
        digest = digest or 1
        slot = self._slot(digest)
        if self._keys[slot] == digest:
            self._values[slot] = value
        else:
            self._insert(slot, digest, value)

    def _insert(self, slot: int, digest: int, value: int) -> None:
        self._keys[slot] = digest
        self._values[slot] = value
        self._size += 1
        if self._size * 2 > self._mask:
            old = zip(self._keys, self._values, strict=True)
            self._alloc((self._mask + 1) * 2)
            for member, stored in old:
                if member:
                    self._insert(self._slot(member), member, stored)

    def items(self) -> list[tuple[int, int]]:
        """``(digest, value)`` pairs, in no particular order."""
        return [(k, v) for k, v in zip(self._keys, self._values, strict=True) if k]


class DigestSet:
    """A set of 64-bit digests in one typed array.

    A Python set of such ints costs ~70 bytes per member (an int object and its slot); this
    open-addressing table (linear probing, at most half full) costs 16-32, which is what
    keeps a million-entry manifest's duplicate check small.

    >>> seen = DigestSet()
    >>> seen.add(0x9E3779B97F4A7C15), seen.add(0x9E3779B97F4A7C15), len(seen)
    (True, False, 1)
    """

    __slots__ = ("_keys", "_mask", "_size")

    def __init__(self, capacity: int = 1024) -> None:
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self._mask = capacity - 1  # capacity is a power of two
        self._keys = array("Q", [0]) * capacity  # 0 = empty slot (allocated once)
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
