"""Per-group shelves: where a demand shape looks for rows that can hold it.

Rows are filed by worker group (and kind: live, on its way, new), in row order. A selector chain
ranks groups, so a shape visits exactly the groups its selectors allow, in placement order, and
each shelf answers "can any of my rows hold one bundle?" before its rows are scanned: its
:class:`Reach` keeps the rows' capacities sorted by free CPU with a running per-key maximum, so the
answer is exact for CPU plus any one other key (an upper bound beyond that). Free capacity only
shrinks while demand is placed, so an older reach stays an upper bound; a shelf whose rows changed
is ``dirty`` and gets a fresh reach after the next scan that found nothing. Whatever adds capacity
marks the shelf ``stale``: it is rebuilt from its ``members`` before its next use. Rows that can
no longer hold the smallest shape the group will see (its ``floor``) are dropped on the way.

Growth has its own shelves (:class:`GrowShelf`): a group's growable rows, split into the rows this
plan already grows (tried first, they need no new resize slot) and the others, each with a reach
over free capacity plus growth room.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate


class Reach:
    """What some rows can hold: the rows sorted by free CPU (descending) with, per key, the running
    maximum of their capacity in that order, plus rows added since (``extra_rows``, their maximum
    ``extra``). Capacity only shrinks while a reach is in use, so the rows it lists with at least
    some CPU are a superset of the rows that have that much now."""

    __slots__ = ("cpu", "extra", "extra_rows", "peaks", "rows", "top")

    def __init__(self, rows: list[int], values: list[list[int]], kc: int) -> None:
        order = sorted(range(len(rows)), key=lambda j: -values[j][kc])
        self.rows = [rows[j] for j in order]
        self.cpu = [-values[j][kc] for j in order]
        ordered = [values[j] for j in order]
        # per key: the running maximum (C-level accumulate: cheaper than one list per row)
        self.peaks = [list(accumulate(col, max)) for col in zip(*ordered, strict=True)] if ordered else []
        self.top: list[int] | None = [p[-1] for p in self.peaks] if ordered else None  # a quick first test
        self.extra: list[int] | None = None
        self.extra_rows: list[int] = []

    def find(self, need: list[tuple[int, int]], cpu: int) -> tuple[int, bool]:
        """(how many of ``rows`` may hold one bundle needing ``need`` — ``cpu`` of it CPU — as a
        prefix, 0 when none can; whether some of ``extra_rows`` may)."""
        extra = self.extra
        more = False
        if extra is not None:
            for k, v in need:
                if extra[k] < v:
                    break
            else:
                more = True
        i = bisect_right(self.cpu, -cpu) if cpu > 0 else len(self.cpu)
        if i:
            peaks = self.peaks
            for k, v in need:
                if peaks[k][i - 1] < v:
                    return 0, more
        return i, more

    def to_scan(self, need: list[tuple[int, int]], cpu: int, rows: list[int]) -> list[int] | None:
        """Which of ``rows`` (the rows this reach indexes) to scan for one bundle: None when none can
        hold it, only the candidates when they are few, else ``rows`` as they are."""
        top = self.top
        if top is None:
            return None
        for k, v in need:  # the maximum first: most lookups fail here
            if top[k] < v:
                return None
        i, more = self.find(need, cpu)
        if not i and not more:
            return None
        if 2 * (i + (len(self.extra_rows) if more else 0)) < len(rows):
            return self.candidates(i, more)  # few rows can get enough CPU: only those
        return rows

    def candidates(self, i: int, more: bool) -> list[int]:
        """The rows :meth:`find` allows, in row order."""
        out = self.rows[:i] + self.extra_rows if more else self.rows[:i]
        out.sort()
        return out

    def add(self, row: int, value: list[int]) -> None:
        extra = self.extra
        self.extra = list(value) if extra is None else [a if a > b else b for a, b in zip(extra, value, strict=True)]
        self.extra_rows.append(row)
        top = self.top
        self.top = list(value) if top is None else [a if a > b else b for a, b in zip(top, value, strict=True)]


class Shelf:
    """The rows of one group and kind, in row order, and what they can hold."""

    __slots__ = ("dirty", "members", "reach", "rows", "stale", "wasted")

    def __init__(self, members: list[int]) -> None:
        self.members = members  # every row: capacity that comes back is found again from these
        self.rows: list[int] = []  # rows that may still hold something (dead rows dropped lazily)
        self.reach: Reach | None = None  # None: no rows
        self.stale = True
        self.dirty = False  # rows changed since the reach was made
        self.wasted = 0  # rows scanned in vain since then

    def refresh(self, free: list[list[int]], floor: list[tuple[int, int]], kc: int) -> None:
        """Rebuild from every member."""
        self.rows = list(self.members)
        self.tighten(free, floor, kc)
        self.stale = False

    def tighten(self, free: list[list[int]], floor: list[tuple[int, int]], kc: int) -> None:
        """Drop rows below ``floor`` and make the reach exact again."""
        rows = [r for r in self.rows if _holds(free[r], floor)] if floor else self.rows
        self.rows = rows
        self.reach = Reach(rows, [free[r] for r in rows], kc) if rows else None
        self.dirty = False
        self.wasted = 0

    def add(self, rows: list[int], capacity: list[int], kc: int) -> None:
        """New rows (at the end, in order), each with ``capacity`` free."""
        self.members.extend(rows)
        if self.stale:
            return
        self.rows.extend(rows)
        if self.reach is None:
            self.reach = Reach([], [], kc)
        for r in rows:
            self.reach.add(r, capacity)
        self.dirty = True

    def truncate(self, start: int) -> None:
        """Forget rows from ``start`` on (a rolled-back transaction added them)."""
        self.members = [r for r in self.members if r < start]
        self.stale = True


class GrowShelf:
    """One group's growable rows: ``growing`` (this plan already resizes them) and ``fresh``, each in
    row order with the reach of free capacity plus growth room (``None``: no rows)."""

    __slots__ = ("changed", "dirty", "eff", "fresh", "fresh_reach", "growing", "growing_reach", "members", "stale",
                 "wasted")

    def __init__(self, members: list[int]) -> None:
        self.members = members
        self.growing: list[int] = []
        self.fresh: list[int] = []
        self.growing_reach: Reach | None = None
        self.fresh_reach: Reach | None = None
        self.stale = True
        self.dirty = [False, False]  # growing, fresh: rows changed since the reach was made
        self.wasted = [0, 0]  # rows scanned in vain since then
        self.eff: dict[int, list[int]] = {}  # each row's free capacity plus growth room, when last seen
        self.changed: set[int] = set()  # rows whose capacity or room changed since


def _holds(capacity: list[int], floor: list[tuple[int, int]]) -> bool:
    for k, v in floor:  # noqa: SIM110 (a plain loop: all() with a generator costs twice as much here)
        if capacity[k] < v:
            return False
    return True


def holds(capacity: list[int], floor: list[tuple[int, int]]) -> bool:
    """``capacity`` has at least ``floor``'s amount of each of its keys."""
    return _holds(capacity, floor)
