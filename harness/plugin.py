"""The plug-in interface: problems and strategies, declared by name, registered on import.

A problem builds the data (and whatever else a strategy trains on) for one seed and
evaluates a trained solution; a strategy trains on what the problem built. Both declare
their ``parameters`` and ``metrics``, so the grid can validate a study and the store can
type every column before anything runs::

    class Ridge(Strategy):
        "Ridge regression with a fixed penalty."
        name = "ridge"
        family = "linear"
        parameters = {"lam": Param(float, 1.0, "penalty", low=0)}
        metrics = {"lam": Metric(float, "the penalty used")}

        def fit(self, task, run):
            ...
            return Fit(solution=W, metrics={"lam": self.params["lam"]})

Problems and strategies of the same ``family`` combine. Neither imports the executors or
the store: the runner calls them through this interface only.
"""

from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import registry
from .cell import RESERVED
from .params import Param, validate_params
from .timing import synchronize
from .vocabulary import Role, check_declarations


class Diverged(Exception):
    """Raise from a strategy whose training blew up (NaN/inf loss): the cell is ``diverged``."""


@dataclass(frozen=True)
class Metric:
    """A declared metric column: its type (float, int or str), meaning, unit (``"s"`` for a
    duration) and role (what the engine does with it, e.g.
    ``harness.vocabulary.PER_ITERATION``; None: nothing special)."""

    kind: type = float
    doc: str = ""
    unit: str = ""
    role: Role | None = None

    def __post_init__(self) -> None:
        if self.role is not None and not isinstance(self.role, Role):
            raise TypeError(f"Metric role must be a harness.vocabulary.Role, not {self.role!r}")


class Plugin(ABC):
    """Common base of :class:`Problem` and :class:`Strategy`."""

    kind: ClassVar[str] = "plugin"
    name: ClassVar[str]
    family: ClassVar[str]
    parameters: ClassVar[dict[str, Param]] = {}
    metrics: ClassVar[dict[str, Metric]] = {}
    # Small, fast parameter values for the contract test that runs on every plug-in.
    smoke_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any):
        self.params = self.validate(params)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and not inspect.isabstract(cls):
            clash = RESERVED & set(cls.parameters)
            if clash:
                raise TypeError(f"{cls.__name__}: parameter names {sorted(clash)} are reserved")
            check_declarations(cls)
            registry.register(cls.kind, cls)

    @classmethod
    def validate(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Validated parameters with defaults filled in; raises ``ParamError``."""
        params = validate_params(cls.parameters, given, f"{cls.kind} {cls.name}")
        cls.check(params)
        return params

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        """Rules that involve several parameters; raise ``ParamError`` naming the key."""
        return None

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str | None:
        """What the variant with these (validated) parameters is, in words, for reports;
        None when the name and parameters say it."""
        return None

    @classmethod
    def summary(cls) -> str:
        """The first paragraph of the docstring, on one line."""
        doc = inspect.getdoc(cls) if cls.__doc__ else ""
        return " ".join((doc or "").split("\n\n")[0].split())


class RunContext:
    """What a running cell offers its problem and strategy: the device, a history log, and
    a training clock that evaluation inside the training loop can pause.

    ``run.log("loss", 0.3, step=10, split="val")`` appends a history row stamped with the
    training time so far; ``with run.evaluating(): ...`` excludes a block from training
    time (it counts as evaluation time)."""

    def __init__(self, device: Any, seed: int, cpus: int = 1):
        self.device, self.seed, self.cpus = device, seed, cpus
        self.history: list[tuple[int, int | None, float, str, str, float]] = []
        self._started: float | None = None
        self._stopped: float | None = None
        self._paused_total = 0.0
        self._paused_at: float | None = None

    def start_training(self) -> None:
        synchronize(self.device)
        self._started = time.perf_counter()

    def stop_training(self) -> None:
        synchronize(self.device)
        self._stopped = time.perf_counter()

    @property
    def train_s(self) -> float:
        """Training wall time so far (evaluation blocks excluded), synchronized on CUDA."""
        if self._started is None:
            return 0.0
        end = self._stopped
        if end is None:
            synchronize(self.device)
            end = time.perf_counter()
        paused = self._paused_total + (end - self._paused_at if self._paused_at else 0.0)
        return end - self._started - paused

    @property
    def eval_in_training_s(self) -> float:
        """Time spent in :meth:`evaluating` blocks."""
        return self._paused_total

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Pause the training clock for an evaluation inside the training loop."""
        synchronize(self.device)
        self._paused_at = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self._paused_total += time.perf_counter() - self._paused_at
            self._paused_at = None

    def log(
        self, metric: str, value: float, *, step: int, split: str = "train",
        epoch: int | None = None,
    ) -> None:
        """Record one history value (long format: one row per step and metric)."""
        self.history.append((int(step), epoch, self.train_s, split, metric, float(value)))


@dataclass
class Fit:
    """What a strategy returns: the trained solution and its own metrics."""

    solution: Any
    metrics: dict[str, float] = field(default_factory=dict)


class Problem(Plugin):
    """A problem: data (and model pieces) for a seed, and the evaluation of a solution."""

    kind: ClassVar[str] = "problem"

    def check_inputs(self) -> None:
        """Check external inputs (data files) before anything runs; raise ``DataError``."""
        return None

    @abstractmethod
    def build(self, seed: int, run: RunContext) -> Any:
        """Everything the strategies of this family train on, for ``seed`` (deterministic:
        the same seed gives the same data for every strategy)."""

    @abstractmethod
    def evaluate(self, task: Any, solution: Any, run: RunContext) -> dict[str, float]:
        """Metrics of a trained solution (timed as evaluation)."""


class Strategy(Plugin):
    """A training strategy for the problems of its family."""

    kind: ClassVar[str] = "strategy"

    @abstractmethod
    def fit(self, task: Any, run: RunContext) -> Fit:
        """Train on ``task`` and return the solution with the strategy's own metrics."""
