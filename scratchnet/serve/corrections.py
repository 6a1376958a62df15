"""Saving the user's corrections: "Wrong? It is: 4" files the drawing as ``<folder>/<label>/NNNN.png``.

The folder then holds one sub-folder per class, the layout image-folder datasets use (Keras's
``image_dataset_from_directory``, torchvision's ``ImageFolder``), ready for fine-tuning a model on the
user's own hand. The file is the drawing (or photo) as it was sent, upright, on white paper, in grey, at
most ``imageprep.WORK_SIZE`` pixels on a side: preparing it for the network is left to training time, so a
better preparation later still starts from the original.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from PIL import Image

from scratchnet import imageprep, paths
from scratchnet.datasets.folder import folder_name
from scratchnet.fileio import atomic_path

_NUMBERED = re.compile(r"^(\d+)\.png$")


def default_folder() -> Path:
    """``~/.cache/scratchnet/handwriting`` (under ``$SCRATCHNET_HOME`` when that is set)."""
    return paths.home() / "handwriting"


class Corrections:
    """Numbered PNG files of drawings, one sub-folder per label, under ``folder``."""

    def __init__(self, folder=None):
        self.folder = Path(folder).expanduser() if folder is not None else default_folder()
        self._lock = threading.Lock()  # two saves at once must not pick the same number

    def save(self, image: Image.Image, label: str) -> Path:
        """Write ``image`` as the next ``<folder>/<folder_name(label)>/NNNN.png``; returns its path.

        ``label`` must already be checked against the model's classes: only that check keeps the request
        from choosing the path.
        """
        picture = imageprep.flatten_transparency(imageprep.load_image(image)).convert("L")
        picture.thumbnail((imageprep.WORK_SIZE, imageprep.WORK_SIZE), Image.Resampling.LANCZOS)
        folder = self.folder / folder_name(label)
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self._next_number(folder):04d}.png"
            with atomic_path(path, suffix=".png") as temporary:
                picture.save(temporary, format="PNG")
        return path

    def count(self, label: str | None = None) -> int:
        """How many drawings are saved (for one label, or in all)."""
        folders = [self.folder / folder_name(label)] if label is not None else (
            [entry for entry in self.folder.iterdir() if entry.is_dir()] if self.folder.is_dir() else [])
        return sum(1 for folder in folders if folder.is_dir()
                   for entry in folder.iterdir() if _NUMBERED.match(entry.name))

    @staticmethod
    def _next_number(folder: Path) -> int:
        numbers = [int(match.group(1)) for entry in folder.iterdir() if (match := _NUMBERED.match(entry.name))]
        return max(numbers, default=0) + 1
