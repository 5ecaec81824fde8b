"""``plt``: matplotlib.pyplot, imported at the first plot (the course's figures share it)."""
from __future__ import annotations

from typing import Any


class _Pyplot:
    """``matplotlib.pyplot``, imported at the first plot. Every process that imports ``course_lib`` - torchrun
    ranks, spawned DataLoader workers, peer subprocesses - would otherwise pay ~0.9 s for a module only a
    notebook uses."""

    def __getattr__(self, name: str) -> Any:
        import matplotlib.pyplot

        return getattr(matplotlib.pyplot, name)


plt = _Pyplot()
