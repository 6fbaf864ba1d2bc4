"""The planner's fast paths give exactly what the straightforward computation gives."""

import random

import numpy as np

from autoscaler.plan.fitindex import BLOCK, FitIndex
from autoscaler.plan.guards import Budget
from autoscaler.plan.workspace import build
from autoscaler.policy import Policy
from tests.planning import group, node, pod, snapshot


def _scan(avail: np.ndarray, idx: np.ndarray, shape: tuple[int, ...], keys: list[int], count: int) -> list[int]:
    """The full scan FitIndex replaces: rows that hold ≥ 1 bundle, in order, until ``count`` fit."""
    rows, bundles = [], 0
    for r in idx.tolist():
        c = min(int(avail[r, k]) // shape[k] for k in keys)
        if c > 0:
            rows.append(r)
            bundles += c
            if bundles >= count:
                break
    return rows


def test_fit_index_finds_what_a_full_scan_finds_while_capacity_shrinks() -> None:
    rng = random.Random(7)
    avail = np.array([[rng.choice((0, 0, 500, 1000, 4000)), rng.choice((0, 2, 8))] for _ in range(5 * BLOCK)])
    idx = np.array(rng.sample(range(avail.shape[0]), 4 * BLOCK + 5), dtype=np.int64)
    index = FitIndex.build(avail, idx, n=avail.shape[0], epoch=0)
    for _ in range(300):
        shape = (rng.choice((250, 500, 1000, 2000)), rng.choice((0, 1, 4)))
        keys = [k for k in range(2) if shape[k]]
        count = rng.randint(1, 6)
        rows, caps = index.first_fits(avail, shape, keys, count)
        assert rows == _scan(avail, idx, shape, keys, count)
        assert caps == [avail[r].tolist() for r in rows]
        for r in rows[:1]:  # capacity only shrinks while an index is in use
            avail[r] = np.maximum(avail[r] - np.array(shape), 0)


def test_fit_index_extended_after_rows_are_added() -> None:
    avail = np.arange(2 * 3 * BLOCK).reshape(3 * BLOCK, 2)
    old = FitIndex.build(avail, np.arange(2 * BLOCK), n=2 * BLOCK, epoch=3)
    new_idx = np.concatenate([np.arange(BLOCK + 5), np.arange(2 * BLOCK, 3 * BLOCK), np.arange(BLOCK + 5, 2 * BLOCK)])
    grown = old.extended(avail, new_idx, n=3 * BLOCK)
    fresh = FitIndex.build(avail, new_idx, n=3 * BLOCK, epoch=3)
    assert np.array_equal(grown.bmax, fresh.bmax) and np.array_equal(grown.idx, fresh.idx)


def test_budget_full_matches_can_take() -> None:
    b = Budget(per_node=2, per_cluster=4, counts=np.zeros(3, dtype=np.int64))
    nodes = np.array([0, 1, 2])
    for n in (0, 0, 1):
        assert b.take(n)
    assert b.full(nodes).tolist() == [not b.can_take(n) for n in range(3)] == [True, False, False]
    assert b.take(2)
    assert b.full(nodes).tolist() == [True, True, True]  # the cluster cap is reached


def test_cached_room_follows_growth_on_the_node() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=2)
    snap = snapshot([pod("a", g, "n1"), pod("b", g, "n1")], [node("n1", 16, 64)], [g])
    ws = build(snap, Policy.default(), 0.0)
    before = ws.room()[:2].copy()
    kc = ws.kidx["cpu"]
    ws.node_free[0, kc] -= 3000
    ws.node_changed(0)
    after = ws.room()[:2]
    assert (after[:, 0] == np.minimum(before[:, 0], ws.node_free[0, kc])).all()
    assert np.array_equal(after, ws._room_of(np.arange(2)))
