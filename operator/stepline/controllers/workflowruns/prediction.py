"""How long the next run of a workflow will take: T = Σ t_i with each t_i random. Pure.

A run's duration is the sum of its steps' durations (they run one after another), each drawn
from what that step took in the runs observed, plus the operator's own time between them. The
sum of random durations is not the sum of their medians: a skewed step (exponential, say) has
a mean above its median, and quantiles of a sum do not add. So the distribution of T is
sampled: each draw takes, for every step, one of its observed durations at random — or none,
with the frequency the step was skipped (`when`) in the runs observed — adds them and the
overhead of a run picked at random, and the quantiles are read from the draws. The observed
durations are the model (an empirical distribution, the bootstrap), so no shape is assumed.

The draws use a fixed seed and the observations are taken in a canonical order: the same
observations give the same prediction, and a status written from it changes only when they do.
A prediction costs a few milliseconds (4,000 draws), and the statistics of every workflow are
recomputed each retention pass, so predictions are memoised by a 64-bit digest of their
observations (the last CACHE_SIZE of them, about 100 bytes each).
"""

from __future__ import annotations

import math
import random
from array import array
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DRAWS = 4000
SEED = 20261202
CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class SuccessfulRun:
    """One successful run: its duration, and each step that ran with its call's duration."""

    duration_seconds: float
    step_seconds: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class DurationPrediction:
    p50: float
    p95: float
    runs: int  # the successful runs it was made from


def quantile(ordered: Sequence[float], q: float) -> float:
    """The `q` (0..1) quantile of an ascending, non-empty sample, nearest rank."""
    rank = max(math.ceil(q * len(ordered)), 1)
    return ordered[rank - 1]


_memo: OrderedDict[int, DurationPrediction] = OrderedDict()


def predict_duration(
    runs: Sequence[SuccessfulRun], *, draws: int = DRAWS, seed: int = SEED
) -> DurationPrediction | None:
    """p50 and p95 of the next successful run's duration; None without a run to learn from."""
    if not runs:
        return None
    ordered = sorted(runs, key=lambda r: (r.duration_seconds, sorted(r.step_seconds.items())))
    digest = hash((draws, seed, *((r.duration_seconds, *r.step_seconds.items()) for r in ordered)))
    known = _memo.get(digest)
    if known is None:
        known = _memo[digest] = _sample(ordered, draws=draws, seed=seed)
        if len(_memo) > CACHE_SIZE:
            _memo.popitem(last=False)
    else:
        _memo.move_to_end(digest)
    return known


def _sample(runs: Sequence[SuccessfulRun], *, draws: int, seed: int) -> DurationPrediction:
    samples: dict[str, list[float]] = {}
    for run in runs:
        for step, seconds in run.step_seconds.items():
            samples.setdefault(step, []).append(seconds)
    ran = {step: len(values) / len(runs) for step, values in samples.items()}
    # The operator's time in a run beyond its step calls (expressions, status, scheduling).
    overheads = [max(run.duration_seconds - sum(run.step_seconds.values()), 0.0) for run in runs]
    rng = random.Random(seed)  # noqa: S311 # a reproducible estimate, not a secret
    totals = []
    for _ in range(draws):
        total = rng.choice(overheads)
        for step, values in samples.items():
            if ran[step] >= 1 or rng.random() < ran[step]:
                total += rng.choice(values)
        totals.append(total)
    totals.sort()
    return DurationPrediction(p50=quantile(totals, 0.5), p95=quantile(totals, 0.95), runs=len(runs))


REMAINING_DRAWS = 1000  # per checkpoint of a running run: a millisecond, not a few
_remaining_memo: OrderedDict[tuple[int, int, frozenset[str]], float | None] = OrderedDict()


def predict_remaining(history: DurationHistory, done: frozenset[str]) -> float | None:
    """The median seconds left of a run that has finished the steps in `done`: the sum of the
    other steps' durations, each drawn as in `predict_duration` (skips by their frequency).
    None without a run to learn from. Memoised by the history's version and `done`, so a
    checkpoint of each run costs a dictionary look-up until the history changes."""
    key = (id(history), history.version, done)
    if key in _remaining_memo:
        _remaining_memo.move_to_end(key)
        return _remaining_memo[key]
    runs = history.observations()
    rest = [
        SuccessfulRun(
            sum(t for s, t in run.step_seconds.items() if s not in done),
            {s: t for s, t in run.step_seconds.items() if s not in done},
        )
        for run in runs
    ]
    found = _sample(rest, draws=REMAINING_DRAWS, seed=SEED).p50 if rest else None
    _remaining_memo[key] = found
    if len(_remaining_memo) > CACHE_SIZE:
        _remaining_memo.popitem(last=False)
    return found


HISTORY_SIZE = 128


class DurationHistory:
    """The last HISTORY_SIZE successful runs of one workflow, for its prediction, whether or
    not retention still keeps them (a workflow that keeps 20 runs would otherwise predict from
    20, too few for skewed step times: bench/prediction/RESULTS.md).

    Compact, as the operator keeps one per workflow: a ring of rows of doubles (the run's
    duration, then each step's, NaN when it was skipped), 4 KiB for 3 steps. A run with a step
    the rows have no column for gets one added (the runs before did not run that step).
    """

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self._size = size
        self._steps: tuple[str, ...] = ()
        self._rows = array("d")
        self._next = 0  # the row the next run overwrites, once the ring is full
        self.version = 0  # counts the runs added: a memo of what it predicts is keyed by it

    def __len__(self) -> int:
        return len(self._rows) // (1 + len(self._steps)) if self._steps else 0

    def add(self, run: SuccessfulRun) -> None:
        self.version += 1
        new = [step for step in run.step_seconds if step not in self._steps]
        if new:
            self._widen(new)
        row = [run.duration_seconds, *(run.step_seconds.get(s, math.nan) for s in self._steps)]
        width = len(row)
        if len(self._rows) < self._size * width:
            self._rows.extend(row)
            return
        start = self._next * width
        self._rows[start : start + width] = array("d", row)
        self._next = (self._next + 1) % self._size

    def _widen(self, steps: list[str]) -> None:
        """Adds a column per step in `steps`: the runs recorded before did not run them."""
        rows = self.observations()
        self._steps = (*self._steps, *steps)
        self._rows, self._next = array("d"), 0
        for run in rows:
            self._rows.extend(
                [run.duration_seconds, *(run.step_seconds.get(s, math.nan) for s in self._steps)]
            )

    def observations(self) -> list[SuccessfulRun]:
        """The runs recorded, oldest first."""
        width = 1 + len(self._steps)
        found = []
        for start in range(0, len(self._rows), width):
            duration, *seconds = self._rows[start : start + width]
            steps = {s: t for s, t in zip(self._steps, seconds, strict=True) if not math.isnan(t)}
            found.append(SuccessfulRun(duration, steps))
        return found[self._next :] + found[: self._next]  # oldest first
