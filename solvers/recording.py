"""What the training loops report to and time themselves with — both optional, so the
loops run as plain library calls.

A *recorder* is anything with ``log(metric, value, *, step, split="train", epoch=None)``
and ``evaluating()`` (a context manager around evaluation done inside the training loop,
which the recorder may exclude from training time). The harness passes its per-cell run
context; a library user passes nothing (:class:`NullRecorder`) or their own.

A *clock* is a function returning seconds; :func:`device_clock` waits for the device's
queued work before reading ``time.perf_counter``, so CUDA timings are honest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch


class Recorder(Protocol):
    def log(self, metric: str, value: float, *, step: int, split: str = "train",
            epoch: int | None = None) -> None: ...

    def evaluating(self) -> Any: ...


class NullRecorder:
    """Records nothing."""

    def log(self, metric: str, value: float, *, step: int, split: str = "train",
            epoch: int | None = None) -> None:
        return None

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        yield


def device_clock(device: Any) -> Callable[[], float]:
    """``time.perf_counter``, after ``torch.cuda.synchronize`` on a CUDA ``device``."""
    device = torch.device(device)
    if device.type != "cuda":
        return time.perf_counter

    def clock() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return clock
