"""Does the loader keep up with training? A fixed training step consumes batches; time spent waiting for the
next batch is the loader's fault, and its share of the step time is the number a learner acts on.

Three steps: ``"busy"`` spins the main thread for ``step_ms`` (standing in for an accelerator step: CUDA's
default synchronisation also spins a host core), ``"sleep"`` blocks it for ``step_ms`` (an accelerator step whose
host thread leaves its core to the workers), ``"cnn"`` runs a small CNN forward/backward and SGD update on
the batch's device (on a CPU, real work that competes with the DataLoader workers for the same cores).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader

from .throughput import count_samples_in


def small_cnn(channels: int = 3, classes: int = 10) -> nn.Module:
    """Two strided convolutions, global pooling and a linear layer: a few ms per batch of 64 on a CPU core."""
    return nn.Sequential(nn.Conv2d(channels, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes))


def _images_and_labels(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict):
        x, y = batch["x"], batch["y"]
    else:
        x, y = batch[0], batch[1]
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    return x, y.long()


class TrainingStep:
    """A fixed unit of training work per batch: ``"busy"`` (spin ``step_ms``), ``"sleep"`` (block ``step_ms``, the
    core left free) or ``"cnn"`` (forward/backward)."""

    def __init__(self, kind: str = "busy", step_ms: float = 20.0, *, classes: int = 10, seed: int = 0):
        if kind not in ("busy", "sleep", "cnn"):
            raise ValueError(f"kind must be 'busy', 'sleep' or 'cnn', got {kind!r}")
        if kind != "cnn" and step_ms <= 0:
            raise ValueError(f"step_ms must be > 0, got {step_ms}")
        self.kind, self.step_ms, self.classes, self.seed = kind, float(step_ms), classes, seed
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def __call__(self, batch: Any) -> None:
        if self.kind == "busy":
            end = time.perf_counter() + self.step_ms / 1000
            while time.perf_counter() < end:
                pass
            return
        if self.kind == "sleep":
            time.sleep(self.step_ms / 1000)
            return
        x, y = _images_and_labels(batch)
        if self.model is None:
            torch.manual_seed(self.seed)
            self.model = small_cnn(x.shape[1], self.classes).to(x.device)  # on the batch's device (CPU or GPU)
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        loss = nn.functional.cross_entropy(self.model(x), y.to(x.device) % self.classes)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if x.is_cuda:
            torch.cuda.synchronize(x.device)  # the step's time is the GPU's, not the kernel launches'

    def __repr__(self) -> str:
        return f"TrainingStep({self.kind!r}" + (f", step_ms={self.step_ms:g})" if self.kind != "cnn" else ")")


@dataclass
class DataWait:
    """Time a training loop spent waiting for batches vs training on them."""

    label: str
    batches: int
    samples: int
    wait_s: float
    step_s: float

    @property
    def fraction(self) -> float:
        """Share of the loop's time spent waiting for data (0: the loader keeps up)."""
        return self.wait_s / (self.wait_s + self.step_s)

    @property
    def samples_per_s(self) -> float:
        """Samples trained per second, waiting included."""
        return self.samples / (self.wait_s + self.step_s)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, derived numbers included."""
        return {**asdict(self), "fraction": self.fraction, "samples_per_s": self.samples_per_s}


def loader_workers(loader: Any, depth: int = 4) -> int:
    """DataLoader worker processes behind ``loader`` (0 if none): a DataLoader's ``num_workers``, looked up
    through wrappers that keep their source as ``.loader`` (``DeviceLoader``, the one-thread wrapper)."""
    for _ in range(depth):
        if isinstance(loader, DataLoader):
            return loader.num_workers
        loader = getattr(loader, "loader", None)
        if loader is None:
            break
    return 0


def data_wait(loader: Iterable[Any], step: TrainingStep, *, batches: int = 20, warmup: int | None = None,
              label: str = "loader") -> DataWait:
    """Run ``step`` on ``batches`` batches of ``loader`` (after ``warmup`` untimed ones); time the waits.

    ``warmup`` defaults to ``max(2, num_workers)`` of the DataLoader behind ``loader``: each worker's first
    batch waits for that worker to start, so fewer warm-up batches would count start-up as waiting (and the
    wait share would grow with the worker count for no steady-state reason).
    """
    if batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")
    if warmup is None:
        warmup = max(2, loader_workers(loader))
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    iterator = iter(loader)
    wait = busy = 0.0
    n = samples = 0
    for i in range(warmup + batches):
        t0 = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            break
        t1 = time.perf_counter()
        step(batch)
        t2 = time.perf_counter()
        if i >= warmup:
            wait, busy, n = wait + t1 - t0, busy + t2 - t1, n + 1
            samples += count_samples_in(batch)
    del iterator
    if n == 0:
        raise ValueError(f"{label}: no batches after {warmup} warm-up batches: use more data or fewer warm-ups")
    return DataWait(label, n, samples, wait, busy)
