"""Garbage collection in the processes that run batches of events (workers, the embedded runner).

A batch allocates many short-lived objects with reference cycles (SpiffWorkflow's task trees,
the ORM's states). With CPython's default thresholds they outlived the young collections made
during the batch, aged into the oldest generation, and were freed by full collections that also
walked every object the process had loaded: pauses of 130-180 ms every few hundred events, in the
middle of some batch, and a tenth of the batches' CPU in all (bench/batches.py). So, once the
process has loaded what it needs, `settle` keeps that out of collections and makes the young
generation big enough for a batch, and `after_batch` frees each batch's garbage while it is
still young: a few milliseconds a batch, and no full collection of the whole process.
"""
from __future__ import annotations

import gc

# Objects allocated (less those freed) before a young collection starts on its own: more than a
# batch of a few dozen events makes, so that `after_batch` usually finds them all still young.
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """The process has started (modules, rules and specs loaded): freeze what it holds out of
    future collections and let the young generation grow to a batch's size."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 100)


def after_batch() -> None:
    """Collect the garbage of the batch just committed, while it is young."""
    gc.collect(1)
