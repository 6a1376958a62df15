"""Runs the tour's chapters under pytest: every ```python block and hidden set-up block is executed in order,
one namespace per chapter, and the printed output of ``>>>`` examples is compared with what the chapter shows.

Figures go to ``$SCRATCHNET_TOUR_FIGURES`` when it is set (``python -m scratchnet.tools.tour_figures`` sets it to
``docs/tour/img``), and otherwise to a temporary folder, so a test run never rewrites the committed pictures.
"""

import os
import tempfile
from doctest import ELLIPSIS, NORMALIZE_WHITESPACE
from pathlib import Path

# As in tests/conftest.py: TensorFlow's plain kernels for the parity chapter, set before TensorFlow is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib

matplotlib.use("Agg")

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

TOUR = Path(__file__).resolve().parent


def figure_folder():
    """Where a chapter's figures are written: the regenerate command's folder, or a fresh temporary one."""
    chosen = os.environ.get("SCRATCHNET_TOUR_FIGURES")
    if chosen:
        folder = Path(chosen)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return Path(tempfile.mkdtemp(prefix="scratchnet-tour-img-"))


def setup(namespace):
    namespace["img"] = figure_folder()


def teardown(namespace):
    import matplotlib.pyplot as plt

    plt.close("all")


sybil = Sybil(
    parsers=[PythonCodeBlockParser(doctest_optionflags=ELLIPSIS | NORMALIZE_WHITESPACE), SkipParser()],
    patterns=["[0-9][0-9]-*.md"],
    path=str(TOUR),
    setup=setup,
    teardown=teardown,
)

pytest_collect_file = sybil.pytest()
