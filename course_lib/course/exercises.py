"""Exercises a learner solves: an empty answer, a check that fails until it is right, a solution kept aside.

A chapter's exercise cell leaves ``answer = None`` for the learner to fill in; the check cell calls
``answer = solved(name, answer, use_solutions, **context)`` and then asserts on ``answer``. With ``use_solutions``
False (the default in JupyterLab) an empty answer raises :class:`NotSolved` naming the exercise; ``make course``
and CI pass ``use_solutions=True``, so the stored solution runs through the very same checks.

Solutions are registered with :func:`solution` in ``course_lib/solutions/``, one module per chapter, one
function per exercise.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

_SOLUTIONS: dict[str, Callable[..., Any]] = {}


class NotSolved(AssertionError):
    """An exercise left empty: the message says which one and where its solution is."""


def solution(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as the solution of exercise ``name``."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _SOLUTIONS:
            raise ValueError(f"exercise {name!r} already has a solution ({_SOLUTIONS[name].__qualname__})")
        _SOLUTIONS[name] = fn
        return fn
    return register


def solved(name: str, answer: Any, use_solutions: bool = False, **context: Any) -> Any:
    """The learner's ``answer``; if it is None, the stored solution (``use_solutions``) or :class:`NotSolved`."""
    if answer is not None:
        return answer
    importlib.import_module("course_lib.solutions")  # registers every chapter's solutions
    if name not in _SOLUTIONS:
        raise KeyError(f"no exercise named {name!r}; known: {sorted(_SOLUTIONS)}")
    if not use_solutions:
        raise NotSolved(f"exercise {name!r} is not solved yet: fill in the cell above and run it again "
                        f"(the solution is {_SOLUTIONS[name].__module__}.{_SOLUTIONS[name].__name__})")
    return _SOLUTIONS[name](**context)
