"""The exercise mechanism: an empty answer fails with NotSolved, a given answer passes through, solutions run."""
from __future__ import annotations

import pytest

from course_lib.course import exercises
from course_lib.course.exercises import NotSolved, solution, solved


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(exercises, "_SOLUTIONS", {})
    solution("99_double")(lambda n: 2 * n)
    return exercises._SOLUTIONS


def test_an_empty_answer_is_not_solved_and_names_the_exercise(registered):
    with pytest.raises(NotSolved, match="99_double"):
        solved("99_double", None, False, n=3)


def test_a_given_answer_is_returned_unchanged(registered):
    assert solved("99_double", 5, False, n=3) == 5


def test_use_solutions_runs_the_stored_solution_with_the_context(registered):
    assert solved("99_double", None, True, n=3) == 6


def test_unknown_exercise_and_duplicate_solution_are_refused(registered):
    with pytest.raises(KeyError, match="nope"):
        solved("nope", None, True)
    with pytest.raises(ValueError, match="already has a solution"):
        solution("99_double")(lambda n: n)
