"""Redraw the guided tour's figures: run every chapter of ``docs/tour/`` with its figures going to ``docs/tour/img/``.

Each figure of the tour is drawn by a snippet of its chapter, so redrawing them is running the chapters (under
pytest, as CI does, where they draw into a temporary folder instead):

    python -m scratchnet.tools.tour_figures [CHAPTER ...] [--out docs/tour/img]   # e.g. 05 07: those chapters

Needs a source checkout (the tour is not part of the installed package) and pytest with sybil (the dev extra).
Exit 0 when every chapter ran, 1 otherwise, 2 for usage.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

TOUR = Path(__file__).resolve().parents[2] / "docs" / "tour"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scratchnet.tools.tour_figures", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=TOUR / "img", help="folder for the figures (default: %(default)s)")
    parser.add_argument("chapters", nargs="*", help="only the chapters whose file name contains one of these")
    args = parser.parse_args(argv)
    if not TOUR.is_dir():
        print(f"error: the tour's chapters are not here: {TOUR} (run from a source checkout)", file=sys.stderr)
        return 1
    # Whole chapters only: an example depends on the ones above it, so a chapter cannot run in part.
    chapters = sorted(TOUR.glob("[0-9][0-9]-*.md"))
    if args.chapters:
        chapters = [path for path in chapters if any(wanted in path.name for wanted in args.chapters)]
        if not chapters:
            print(f"error: no chapter's file name contains any of {args.chapters}", file=sys.stderr)
            return 2
    env = dict(os.environ, SCRATCHNET_TOUR_FIGURES=str(args.out.resolve()))
    command = [sys.executable, "-m", "pytest", *map(str, chapters), "-q", "-p", "no:cacheprovider"]
    status = subprocess.call(command, env=env, cwd=TOUR.parents[1])
    if status != 0:
        print("error: a chapter failed, so some figures may be missing or stale", file=sys.stderr)
        return 1
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
