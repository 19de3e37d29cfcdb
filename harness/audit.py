"""The placement audit: which cells' timings something else on their cores may have
slowed, so that no timing verdict, cost estimate or comparison rests on them unawares.

Two kinds of evidence, both read from the rows (docs/slurm.md, "The placement audit"):

- **contended** — the cell's own process measure: its threads were ready to run for
  ``cpu_s + cpu_wait_s`` seconds and got only ``cpu_s`` of them (Linux's run-queue delay,
  ``harness.timing.CpuClock``). This sees any contender — another folder's run started at
  the same time, another Slurm job bound to the same core, any program — which the rows of
  one folder cannot. A cell is judged only when it was CPU-bound enough for the measure to
  mean something: ready to run at least ``MIN_DEMAND_S`` seconds and a quarter of its wall
  time. An I/O- or GPU-bound cell (waiting on disk, network or a CUDA stream sleeps, which
  is not run-queue delay) is not judged, nor a row without ``cpu_wait_s``.
- **oversubscribed** — the folder's own rows: cells on one host that ran at the same time
  on overlapping cores and together asked for more CPUs than those cores (two Slurm nodes
  of one host binding jobs to the same core; cells whose placement was not enforced).

A clean audit on an idle machine gives ``cpu_s / (cpu_s + cpu_wait_s)`` ≈ 0.99; four
CPU-bound cells on two cores get ≈ 0.5 each, and ``MIN_SHARE`` = 0.8 sits between.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_SHARE = 0.8  # of the CPU time a cell was ready to use, below which it was contended
MIN_DEMAND_S = 1.0  # seconds ready to run, below which a cell is not judged
MIN_BUSY = 0.25  # of its wall time ready to run, below which a cell is not CPU-bound
TOLERANCE_S = 0.5  # start/finish stamps of consecutive cells on one core may touch
TIMING_FLAG = "timing_flag"  # the report's column of :func:`timing_flags`


def _core_sets(cores: pd.Series) -> list[frozenset[int]]:
    return [frozenset(int(c) for c in str(v).split(",") if c.strip().isdigit())
            if isinstance(v, str) else frozenset() for v in cores]


def _seconds(stamps: pd.Series) -> np.ndarray:
    """Timestamps as seconds since the epoch (NaN where missing), whatever their unit."""
    epoch = pd.Timestamp(0, tz="UTC")
    return (pd.to_datetime(stamps, utc=True) - epoch).dt.total_seconds().to_numpy(float)


def contended(rows: pd.DataFrame) -> pd.Series:
    """Per row: the share of the CPU time it was ready to use that it got, where it is
    below ``MIN_SHARE`` and the row can be judged; NaN otherwise."""
    if "cpu_wait_s" not in rows or "cpu_s" not in rows:
        return pd.Series(np.nan, index=rows.index)
    cpu = pd.to_numeric(rows["cpu_s"], errors="coerce")
    wait = pd.to_numeric(rows["cpu_wait_s"], errors="coerce")
    wall = pd.to_numeric(rows["wall_s"], errors="coerce")
    demand = cpu + wait
    share = cpu / demand
    judged = (demand >= MIN_DEMAND_S) & (demand >= MIN_BUSY * wall)
    return share.where(judged & (share < MIN_SHARE))


def oversubscribed(rows: pd.DataFrame) -> pd.Series:
    """Per row: the most other cells of ``rows`` that ran at one moment on its host on
    cores overlapping its own, where together with it they asked for more CPUs than those
    cores; 0 otherwise."""
    out = pd.Series(0, index=rows.index)
    need = {"host", "cores", "started_at", "finished_at", "cpus"}
    if rows.empty or not need <= set(rows):
        return out
    start, end = (_seconds(rows[c]) for c in ("started_at", "finished_at"))
    valid = np.isfinite(start) & np.isfinite(end)
    host = rows["host"].astype(str).to_numpy()
    cpus = pd.to_numeric(rows["cpus"], errors="coerce").fillna(1).to_numpy()
    cores = _core_sets(rows["cores"])
    counts = np.zeros(len(rows), dtype=int)
    for i in np.flatnonzero(valid & np.array([bool(c) for c in cores])):
        during = valid & (host == host[i]) & (start < end[i] - TOLERANCE_S) & (
            end > start[i] + TOLERANCE_S)
        during[i] = False
        others = [j for j in np.flatnonzero(during) if cores[j] & cores[i]]
        # the crowd at each moment a cell of it starts while this one runs, not all of
        # them at once: two cells one after the other on a worker never ran together
        for t in {max(start[i], start[j]) for j in others}:
            now = [j for j in others if start[j] <= t + TOLERANCE_S < end[j]]
            span = cores[i].union(*(cores[j] for j in now))
            if now and cpus[i] + cpus[now].sum() > len(span):
                counts[i] = max(counts[i], len(now))
    out[:] = counts
    return out


def timing_flags(rows: pd.DataFrame) -> pd.Series:
    """Per row: why its timings are contaminated, in words, or None when the audit found
    nothing (or could not judge it)."""
    return _flags(rows, contended(rows), oversubscribed(rows))


def _flags(rows: pd.DataFrame, share: pd.Series, crowd: pd.Series) -> pd.Series:
    flags = pd.Series([None] * len(rows), index=rows.index, dtype=object)
    for idx in rows.index:
        why = []
        if pd.notna(share[idx]):
            why.append(f"got {share[idx]:.0%} of the CPU time it was ready to use")
        if crowd[idx]:
            why.append(f"shared its cores with {crowd[idx]} other cell(s) of this folder")
        if why:
            flags[idx] = "; ".join(why)
    return flags


def summary(rows: pd.DataFrame, flags: pd.Series | None = None) -> str | None:
    """How many cells' timings the audit flagged and why, as a clause ("the timings of 4
    of 16 cells are contaminated (…)"); None when it flagged none."""
    share, crowd = contended(rows), oversubscribed(rows)
    flags = _flags(rows, share, crowd) if flags is None else flags
    n = int(flags.notna().sum())
    if not n:
        return None
    parts = []
    if share.notna().any():
        parts.append(f"{int(share.notna().sum())} got less than {MIN_SHARE:.0%} of the CPU "
                     f"time they were ready to use (median {share.median():.0%})")
    if (crowd > 0).any():
        parts.append(f"{int((crowd > 0).sum())} shared cores with other cells of this "
                     "folder running at the same time")
    return f"the timings of {n} of {len(rows)} cells are contaminated ({'; '.join(parts)})"


def unenforced_summary(rows: pd.DataFrame) -> str | None:
    """How many cells ran without enforced placement, and why (each distinct reason once);
    None when every cell was pinned (or the rows predate the ``placement`` column)."""
    if "placement" not in rows:
        return None
    loose = rows[rows["placement"] == "unenforced"]
    if loose.empty:
        return None
    notes = sorted({str(n) for n in loose.get("placement_note", pd.Series()).dropna()})
    return (f"placement was not enforced for {len(loose)} of {len(rows)} cells"
            + (f" ({'; '.join(notes)})" if notes else ""))


def audit_lines(rows: pd.DataFrame) -> list[str]:
    """The audit's findings on ``rows`` as sentences (none when it found nothing)."""
    return [s[0].upper() + s[1:] + "." for s in (summary(rows), unenforced_summary(rows)) if s]
