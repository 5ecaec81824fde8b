"""Open the course in JupyterLab from the project's environment (what ``make lab`` runs).

    python -m course_lib.course.jupyter_lab [--port 8888] [--no-browser]

Registers this environment's Python as the ``python3`` kernel ("Python 3 (ipykernel)" in the launcher), prefers the
environment's Jupyter paths over a user's own kernels, and serves ``notebooks/`` on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .course_runner import KERNEL_TRANSPORT, PROJECT

KERNEL_NAME = "python3"
KERNEL_DISPLAY_NAME = "Python 3 (ipykernel)"


def register_kernel(prefix: str = sys.prefix) -> Path:
    """Install this interpreter as the ``python3`` kernelspec inside ``prefix``; returns the kernelspec folder."""
    from ipykernel.kernelspec import install

    return Path(install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME, prefix=prefix))


def lab_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the server: this environment's kernels win over ``~/.local/share/jupyter``."""
    env = dict(os.environ if base is None else base)
    env["JUPYTER_PREFER_ENV_PATH"] = "1"
    return env


def lab_argv(root_dir: str | Path, *, port: int = 8888, token: str | None = None,
             open_browser: bool = True) -> list[str]:
    """The command line that starts JupyterLab on 127.0.0.1 serving ``root_dir``."""
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(root_dir).resolve()}",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--KernelManager.transport={KERNEL_TRANSPORT}"]
    if token is not None:
        argv += [f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"]
    if not open_browser:
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")             # containers and CI machines often run as root
    return argv


def main(argv: list[str] | None = None) -> int:
    """CLI: register the kernel and run JupyterLab in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.course.jupyter_lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--notebooks", type=Path, default=PROJECT / "notebooks")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    if not args.notebooks.is_dir():
        parser.error(f"--notebooks: {args.notebooks} is not a folder")
    spec = register_kernel()
    print(f"lab: kernel '{KERNEL_DISPLAY_NAME}' -> {sys.executable} ({spec})", flush=True)
    return subprocess.call(lab_argv(args.notebooks, port=args.port, open_browser=not args.no_browser),
                           env=lab_env())


if __name__ == "__main__":
    sys.exit(main())
