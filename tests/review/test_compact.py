"""DigestSet against Python's own set, on generated digests."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from batcher.entry import DigestSet

digests = st.integers(min_value=0, max_value=2**64 - 1)


@given(st.lists(digests, max_size=3000), st.lists(digests, max_size=200))
def test_digest_set_behaves_like_a_set(members: list[int], probes: list[int]) -> None:
    ours, theirs = DigestSet(capacity=8), set()  # small start: exercises growth
    for digest in members:
        # 0 stands for 1 inside (0 marks an empty slot); keep the model the same.
        assert ours.add(digest) == ((digest or 1) not in theirs)
        theirs.add(digest or 1)
    assert len(ours) == len(theirs)
    for digest in members + probes:
        assert (digest in ours) == ((digest or 1) in theirs)


def test_colliding_slots_are_probed_past() -> None:
    ours = DigestSet(capacity=16)
    same_slot = [5 + 16 * k for k in range(7)]  # all land on slot 5
    assert all(ours.add(d) for d in same_slot)
    assert all(d in ours for d in same_slot) and 5 + 16 * 7 not in ours
    assert not ours.add(same_slot[3])
