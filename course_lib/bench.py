"""``python -m course_lib.bench``: every loader side by side (the benchmark lives in ``course_lib.course.bench``)."""
from course_lib.course.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
