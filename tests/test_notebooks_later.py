"""The second half of the course (chapters 06-07: torchrun, object storage, frameworks, your own data) executed by
the course runner on tiny data, beside the first half (tests/test_notebooks.py) on another pytest-xdist worker."""
from __future__ import annotations

import pytest

from tiny_course import COURSE_TIMEOUT_S, SECOND_HALF, check_course_run, check_notebooks, run_half

pytestmark = [pytest.mark.notebooks, pytest.mark.timeout(COURSE_TIMEOUT_S)]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Run chapters 06-07 the way `make course` does, on their own tiny dataset."""
    out = tmp_path_factory.mktemp("course_later")
    return out, run_half(out, SECOND_HALF)


def test_every_notebook_runs_and_writes_a_verification_record(course):
    check_course_run(*course, SECOND_HALF)


def test_executed_notebooks_have_no_errors_and_plots(course):
    check_notebooks(course[0])
