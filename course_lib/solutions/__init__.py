"""The exercises' solutions, one module per chapter (``ch02_mmap_streaming.py`` ...): open yours when stuck.


Each function is registered by exercise name with :func:`course_lib.course.exercises.solution`; ``make course``
and CI run every solution through its chapter's check. Importing this package imports every chapter's module,
so a new chapter only adds a file here.
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
