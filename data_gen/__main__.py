"""``python -m data_gen``."""
import sys

from .cli import main

sys.exit(main())
