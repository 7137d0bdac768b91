"""The audit log as a Merkle tree, hashed as RFC 9162 (Certificate Transparency 2.0) says: a leaf
is SHA-256(0x00 || record), a node SHA-256(0x01 || left || right), a tree of n leaves splits at
the largest power of two below n. A signed tree head (checkpoints.py) then commits to every
record before it: changing, removing or re-hashing any of them changes the root.

Pure functions over leaf hashes; nothing here reads the database.
"""
from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf's bytes."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an inner node from its children's."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The roots of the perfect subtrees of a growing tree (at most log2 n of them): append a
    leaf in O(1) amortised, read the root of the tree so far in O(log n)."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (height, hash), left to right

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash."""
        self.append_subtree(0, leaf)

    def append_subtree(self, height: int, node: bytes) -> None:
        """Add the next 2**height leaves at once, as the root of their perfect subtree (the
        tree so far must hold a multiple of 2**height leaves)."""
        if self.size % (1 << height):
            raise ValueError(f"a subtree of 2**{height} leaves cannot follow {self.size} leaves")
        self.size += 1 << height
        while self._stack and self._stack[-1][0] == height:
            node = node_hash(self._stack.pop()[1], node)
            height += 1
        self._stack.append((height, node))

    def state(self) -> list:
        """The frontier as plain data ([[height, hex], …]), to store and grow later."""
        return [[height, node.hex()] for height, node in self._stack]

    @classmethod
    def from_state(cls, size: int, state: list) -> "Frontier":
        """The frontier of a tree of `size` leaves from its state()."""
        frontier = cls()
        frontier._stack = [(int(height), bytes.fromhex(node)) for height, node in state]
        frontier.size = size
        if sum(1 << height for height, _ in frontier._stack) != size:
            raise ValueError(f"a frontier of {len(state)} subtrees is not a tree of {size}")
        return frontier

    def root(self) -> bytes:
        """The tree head of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


def root(leaves: Iterable[bytes]) -> bytes:
    """The tree head of these leaf hashes."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


def inclusion_proofs(leaves: Sequence[bytes], indices: Iterable[int],
                     size: int) -> dict[int, list[bytes]]:
    """The audit paths (RFC 9162 2.1.3) of several leaves in the tree of the first `size`
    leaves, from one pass over the tree: O(size) hashing whatever their number, then
    O(log size) hashes each."""
    wanted = sorted(set(indices))
    if any(not 0 <= i < size for i in wanted) or size > len(leaves):
        raise ValueError(f"leaves {wanted} are not all in a tree of {size}")
    paths: dict[int, list[bytes]] = {i: [] for i in wanted}

    def within(lo: int, hi: int) -> list[int]:
        return wanted[bisect_left(wanted, lo):bisect_left(wanted, hi)]

    def subtree(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaves[lo]
        k = lo + _split(hi - lo)
        left, right = subtree(lo, k), subtree(k, hi)
        # Post-order: the deepest siblings are appended first, as an audit path lists them.
        for i in within(lo, k):
            paths[i].append(right)
        for i in within(k, hi):
            paths[i].append(left)
        return node_hash(left, right)
    if size:
        subtree(0, size)
    return paths


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of the first `size` leaves."""
    return inclusion_proofs(leaves, [index], size)[index]


def root_from_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The tree head a leaf and its audit path give (RFC 9162 2.1.3.2); equal to the signed
    root if and only if the leaf is in that tree at that index."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    fn, sn, node = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise ValueError("the audit path is longer than the tree")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("the audit path is shorter than the tree")
    return node
