"""The command line of the drawing page.

    python -m scratchnet.serve [--model PATH] [--host 127.0.0.1] [--port 8000] [--open]
                               [--classes NAMES] [--corrections DIR] [--verbose]

Prints one line, ``serving on http://HOST:PORT/``, and serves until interrupted. Without ``--model`` the
model the default training run saved is used; when there is none, one line says how to make one (exit 1).
It listens on the loopback address only, unless ``--host`` asks for another (then with a warning: the page
has no login). Exit codes: 0 after Ctrl+C, 1 no model or the port is taken, 2 usage errors.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from scratchnet import paths
from scratchnet.predict import ModelLoadError

from .corrections import Corrections, default_folder
from .reader import DATASET_CLASSES, ClassesError, Reader
from .server import is_loopback, make_server


def _port(text):
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535 (0: any free port), got {text!r}")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scratchnet.serve",
        description="Serve a page where you draw a character and see what the network reads, what it sees, "
                    "and can correct it to collect your own handwriting.")
    parser.add_argument("--model", type=Path, metavar="PATH",
                        help=f"model file (.npz); default: the default training run's, {paths.default_model_path()}")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--open", action="store_true", help="open the page in the web browser")
    parser.add_argument("--classes", metavar="NAMES",
                        help="the model's class names when they cannot be told from the model: a dataset "
                             f"({', '.join(DATASET_CLASSES)}) or a comma-separated list")
    parser.add_argument("--corrections", type=Path, metavar="DIR",
                        help=f"where corrected drawings are saved (default {default_folder()})")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    return parser


def main(argv=None) -> int:
    """Run the server until Ctrl+C; returns the exit code."""
    args = _parser().parse_args(argv)

    def tell(line):
        print(line, file=sys.stderr, flush=True)

    try:
        reader = Reader(args.model, classes=args.classes, say=tell)
    except (ModelLoadError, ClassesError) as error:
        tell(f"error: {error}")
        return 1
    if not is_loopback(args.host):
        tell(f"warning: listening on {args.host}: other machines can reach this page, and it has no login")
    try:
        server = make_server(reader, args.host, args.port, corrections=Corrections(args.corrections),
                             verbose=args.verbose)
    except OSError as error:
        tell(f"error: cannot listen on {args.host}:{args.port}: {error.strerror or error}")
        return 1
    print(f"serving on {server.url}", flush=True)
    if args.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
