"""The command-line arguments every course command shares, spelled as the library spells them.

``--data-dir`` is a data_gen directory (``data_dir=`` in Python) and ``--num-workers`` is DataLoader worker
processes (``num_workers=``): one word for one thing, on the command line as in code.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable


def add_data_dir_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--data-dir DIR``: a data_gen directory."""
    parser.add_argument("--data-dir", dest="data_dir", type=Path, required=required, help="a data_gen directory")


def add_num_workers_argument(parser: argparse.ArgumentParser, *, default: Any = 0, type: Callable = int,
                             help: str = "DataLoader worker processes") -> None:
    """``--num-workers N``: DataLoader worker processes."""
    parser.add_argument("--num-workers", dest="num_workers", type=type, default=default, help=help)
