"""The course's one vocabulary, and the old keyword names that keep working for one release.

``data_dir`` a data_gen directory; ``source`` what a WebDataset entry point reads (a data_dir, a URL or brace
pattern, or a list of URLs); ``num_workers``; ``window_blocks``. Functions that used other names
(``root=``, ``urls=``, ``directory=``, ``data_path=``, ``workers=``, ``block_buffer=``) accept them with a
``DeprecationWarning`` through :func:`renamed_keywords`; command lines accept ``--data``/``--workers``
beside ``--data-dir``/``--num-workers`` the same way.
"""
from __future__ import annotations

import argparse
import functools
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keywords(**old_to_new: str) -> Callable[[F], F]:
    """Decorate a function (or ``__init__``) so each old keyword still works, with a DeprecationWarning."""
    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__qualname__}() got both {old}= (its old name) and {new}=")
                    warnings.warn(f"{fn.__qualname__}({old}=...) is deprecated: call it {new}=",
                                  DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate


class _OldFlag(argparse.Action):
    """An old command-line flag: stores into the new one's destination and says the new name on stderr."""

    def __init__(self, *args, new: str, **kwargs):
        self.new = new
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_data_dir_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--data-dir DIR`` (a data_gen directory); the old ``--data`` still works."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--data-dir", dest="data_dir", type=Path, help="a data_gen directory")
    group.add_argument("--data", dest="data_dir", type=Path, action=_OldFlag, new="--data-dir",
                       help=argparse.SUPPRESS)


def add_num_workers_argument(parser: argparse.ArgumentParser, *, default: Any = 0, type: Callable = int,
                             help: str = "DataLoader worker processes") -> None:
    """``--num-workers N``; the old ``--workers`` still works."""
    parser.add_argument("--num-workers", dest="num_workers", type=type, default=default, help=help)
    parser.add_argument("--workers", dest="num_workers", type=type, action=_OldFlag, new="--num-workers",
                        help=argparse.SUPPRESS)
