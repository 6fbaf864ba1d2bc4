"""Find the first candidate rows that hold a shape without scanning every candidate.

Packing takes bundles from the first rows, in candidate order, that can hold one. Scanning all
candidates for every demand shape costs O(rows) numpy work per shape, and most rows are full.
A :class:`FitIndex` cuts one chain's candidate list into blocks of ``BLOCK`` rows and keeps, per
block, the largest free amount of each key over its rows. Free capacity only shrinks while the
index is in use (the workspace's ``epoch`` and ``n`` say when it may have grown: then the index
is rebuilt), so a block maximum stays an upper bound: a block whose maximum cannot hold the shape
is skipped, and a block that is scanned gets its maximum recomputed (tightened) on the way.
The rows found, and their order, are exactly what a full scan finds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rows per block: small enough that a scanned block is cheap, large enough that the per-block
#: test stays short (≈ 40 blocks at 2,500 candidates).
BLOCK = 64


@dataclass
class FitIndex:
    n: int  # workspace rows when built
    epoch: int  # workspace capacity epoch when built
    idx: np.ndarray  # (m,) candidate rows in placement order
    bmax: np.ndarray  # (blocks, K) per-block maximum free capacity (an upper bound)

    @staticmethod
    def build(avail: np.ndarray, idx: np.ndarray, n: int, epoch: int) -> FitIndex:
        return FitIndex.of_values(avail.take(idx, axis=0), idx, n, epoch)

    @staticmethod
    def of_values(values: np.ndarray, idx: np.ndarray, n: int, epoch: int) -> FitIndex:
        """An index whose rows ``idx`` have capacity ``values`` (one line per row)."""
        starts = np.arange(0, idx.size, BLOCK)
        bmax = np.maximum.reduceat(values, starts, axis=0) if idx.size else values[:0]
        return FitIndex(n, epoch, idx, bmax)

    def may_hold(self, shape: tuple[int, ...], keys: list[int]) -> bool:
        """False when no block (so no row) can hold one bundle of ``shape``."""
        bmax = self.bmax
        ok = bmax[:, keys[0]] >= shape[keys[0]]
        for k in keys[1:]:
            ok &= bmax[:, k] >= shape[k]
        return bool(ok.any())

    def extended(self, avail: np.ndarray, idx: np.ndarray, n: int) -> FitIndex:
        """The index for ``idx``, the candidates after rows were added (capacity unchanged):
        blocks wholly before the first changed position keep their (tightened) maxima."""
        m = min(self.idx.size, idx.size)
        diff = np.flatnonzero(self.idx[:m] != idx[:m])
        same = int(diff[0]) if diff.size else m
        keep = same // BLOCK
        starts = np.arange(keep * BLOCK, idx.size, BLOCK)
        tail = np.maximum.reduceat(avail.take(idx[keep * BLOCK :], axis=0), starts - keep * BLOCK, axis=0) \
            if starts.size else avail[:0]
        return FitIndex(n, self.epoch, idx, np.concatenate([self.bmax[:keep], tail]))

    def first_fits(
        self, avail: np.ndarray, shape: tuple[int, ...], keys: list[int], count: int
    ) -> tuple[list[int], list[list[int]]]:
        """Rows (in order) that hold ≥ 1 bundle, with their free capacity, until together they
        hold ``count`` bundles (or all such rows). Capacity must not be negative."""
        bmax = self.bmax
        ok = bmax[:, keys[0]] >= shape[keys[0]]
        for k in keys[1:]:
            ok &= bmax[:, k] >= shape[k]
        rows: list[int] = []
        caps: list[list[int]] = []
        bundles = 0
        for b in ok.nonzero()[0].tolist():
            block = self.idx[b * BLOCK : (b + 1) * BLOCK]
            sub = avail.take(block, axis=0)
            bmax[b] = sub.max(axis=0)  # tighten: the real maximum now
            fit = sub[:, keys[0]] >= shape[keys[0]]
            for k in keys[1:]:
                fit &= sub[:, k] >= shape[k]
            hit = fit.nonzero()[0]
            if hit.size == 0:
                continue
            for r, a in zip(block[hit].tolist(), sub[hit].tolist(), strict=True):
                rows.append(r)
                caps.append(a)
                bundles += min(a[k] // shape[k] for k in keys)
                if bundles >= count:
                    return rows, caps
        return rows, caps
