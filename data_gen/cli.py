"""Command line: ``python -m data_gen generate ...``, ``python -m data_gen convert SRC --out DIR ...`` and
``python -m data_gen verify DIR``."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from .convert import CONVERT_FORMATS, convert
from .generate import GenerateError, generate
from .images import DEFAULT_JPEG_QUALITY
from .layout import ALL_FORMATS, FORMATS
from .manifest import verify


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument prints one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 3,32,32, got {text!r}") from None


def _formats(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The ``data_gen`` argument parser."""
    parser = _Parser(prog="python -m data_gen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    gen = sub.add_parser("generate", help="write numpy shards / WebDataset tars and manifest.json")
    gen.add_argument("--out", required=True, help="output directory")
    gen.add_argument("--samples", type=int, default=40_000, help="number of samples (default 40000)")
    gen.add_argument("--shard-size", type=int, default=2_500, help="samples per shard (default 2500)")
    gen.add_argument("--shape", type=_int_list, default=(3, 64, 64), help="sample shape (default 3,64,64)")
    gen.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    gen.add_argument("--seed", type=int, default=0, help="content seed (default 0)")
    gen.add_argument("--formats", type=_formats, default=list(FORMATS),
                     help=f"comma-separated formats from {','.join(ALL_FORMATS)} (default {','.join(FORMATS)})")
    gen.add_argument("--jpeg-quality", type=int, default=DEFAULT_JPEG_QUALITY,
                     help=f"JPEG quality of the img format, 1-100 (default {DEFAULT_JPEG_QUALITY})")
    gen.add_argument("--num-workers", type=int, default=None,
                     help="processes writing shards (default: one per core, up to 4, for large datasets; 0: none)")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    conv = sub.add_parser("convert", help="convert your own data into shards (image folder, arrays, per-sample .npy)")
    conv.add_argument("src", metavar="SRC", help="SRC/<class>/<file>.jpg|png, a folder with x.npy + y.npy, an .npz "
                                                "with x and y, or a folder of one .npy record per sample")
    conv.add_argument("--out", required=True,
                      help="output directory (new, empty, or an earlier run of this conversion)")
    conv.add_argument("--shape", type=_int_list, default=None,
                      help="C,H,W images are decoded, scaled and centre-cropped to "
                           "(default 3,64,64; arrays keep theirs)")
    conv.add_argument("--formats", type=_formats, default=None,
                      help=f"comma-separated from {','.join(CONVERT_FORMATS)} (default npy,img for images, else npy)")
    conv.add_argument("--shard-size", type=int, default=2_500, help="samples per shard (default 2500)")
    conv.add_argument("--seed", type=int, default=0, help="seed of the order samples are converted in (default 0)")
    conv.add_argument("--skip-bad", action="store_true",
                      help="skip unreadable files and list them in the manifest instead of stopping")
    conv.add_argument("--no-progress", action="store_true", help="no progress bar")
    conv.add_argument("--engine", choices=["local", "ray"], default="local",
                      help="local processes (default) or Ray Data tasks, one per shard")
    conv.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local Ray)")
    conv.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    ver = sub.add_parser("verify", help="re-hash every shard against manifest.json")
    ver.add_argument("dir", help="a directory written by 'generate' or 'convert'")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 verification failed, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "verify":
        problems = verify(args.dir)
        for line in problems:
            print(f"BAD {line}", file=sys.stderr)
        print(f"data_gen verify: {args.dir}: " + (f"{len(problems)} problem(s)" if problems else "all shards match"))
        return 1 if problems else 0
    try:
        if args.command == "convert":
            convert(args.src, args.out, shape=args.shape, formats=args.formats, shard_size=args.shard_size,
                    seed=args.seed, skip_bad=args.skip_bad, progress=not args.no_progress, engine=args.engine,
                    ray_address=args.ray_address, num_cpus=args.num_cpus)
            return 0
        generate(args.out, samples=args.samples, shard_size=args.shard_size, shape=args.shape,
                 classes=args.classes, seed=args.seed, formats=args.formats, jpeg_quality=args.jpeg_quality,
                 progress=not args.no_progress, num_workers=args.num_workers)
    except GenerateError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0
