"""The README's module table lists every module, so a learner reading the library finds each one's idea."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("### Modules"):text.index("### Data layout")]


def test_every_module_has_a_row():
    section = modules_section()
    packages = ["course_lib/loaders", "course_lib/measure", "course_lib/teaching", "course_lib/course",
                "course_lib/distributed", "data_gen"]
    missing = [str(p.relative_to(ROOT)) for pkg in packages for p in sorted((ROOT / pkg).glob("*.py"))
               if p.name != "__init__.py" and f"`{p.name}`" not in section]
    assert missing == [], "README's Modules table lacks these modules"
    assert "`course_lib/solutions/`" in section


def test_no_row_names_a_module_that_is_gone():
    import re

    section = modules_section()
    names = set(re.findall(r"^\| `(\w+\.py)`", section, re.M))
    existing = {p.name for p in (ROOT / "course_lib").rglob("*.py")}
    existing |= {p.name for p in (ROOT / "data_gen").glob("*.py")}
    assert names - existing == set()
