"""Prose that quotes a number reads it from the run: ``say(f"...")`` shows Markdown as a cell's output.

A chapter's markdown cells explain *why*; any sentence that states a measured figure is written in a code
cell with ``say``, so the figure is the one this run measured (``tests/test_prose.py`` fails when a markdown
cell types a measured-looking figure). Figures that are not measured here come from a cited source and live in
:data:`SOURCED`.
"""
from __future__ import annotations

from typing import Any

SOURCED: dict[str, dict[str, Any]] = {
    "object_store_small_get": {
        "text": "tens of milliseconds",
        "low_ms": 10.0,  # the low end of "tens of milliseconds": a best case for estimates
        "what": "median latency of a small (< 512 KB) GET or PUT on Amazon S3",
        "source": "AWS whitepaper 'Best Practices Design Patterns: Optimizing Amazon S3 Performance', section "
                  "'Timeouts and Retries for Latency-Sensitive Applications'",
        "url": "https://docs.aws.amazon.com/whitepapers/latest/s3-optimizing-performance-best-practices/"
               "timeouts-and-retries-for-latency-sensitive-applications.html",
    },
}


def say(text: str) -> None:
    """Show ``text`` (Markdown, usually an f-string over measured values) under the cell; print it outside Jupyter."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython is a course dependency
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))


def cite(name: str) -> str:
    """A sourced figure as Markdown: its text, what it is, and a link to the source."""
    s = SOURCED[name]
    return f"{s['text']} ({s['what']}; [{s['source']}]({s['url']}))"
