"""Solutions to the chapters' exercises, one function each, registered by exercise name (see ``exercises``).

Open this file when you are stuck; ``make course`` and CI run every solution through its chapter's check.
"""
from __future__ import annotations

from .exercises import solution  # noqa: F401  (chapters add their solutions below)
