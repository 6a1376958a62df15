"""The names of a model's outputs: which character (or article) each output index means.

One neutral home for what the server (``scratchnet.serve``) and fine-tuning (``python -m scratchnet.train
--dataset folder:DIR``) must agree on, so a drawing filed under "7" by the page trains output 7. (The
sub-folder a class's drawings are filed under is ``scratchnet.datasets.folder.folder_name``.)
"""

from __future__ import annotations

from scratchnet import zoo
from scratchnet.datasets.fashion_mnist import CLASSES as FASHION_CLASSES

DIGITS = tuple("0123456789")
UPPER = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# EMNIST's class characters as its mapping files list them; bymerge and balanced merge the lower-case
# letters that look like their capitals (c, i, j, k, l, m, o, p, s, u, v, w, x, y, z).
EMNIST_BYCLASS = DIGITS + UPPER + tuple("abcdefghijklmnopqrstuvwxyz")
EMNIST_BALANCED = DIGITS + UPPER + tuple("abdefghnqrt")
NOTMNIST = tuple("ABCDEFGHIJ")


#: The classes of every dataset ``python -m scratchnet.train --dataset`` knows, by dataset name.
DATASET_CLASSES = {
    "mnist": DIGITS, "kaggle": DIGITS, "emnist-digits": DIGITS, "emnist-mnist": DIGITS,
    "emnist-byclass": EMNIST_BYCLASS, "emnist-bymerge": EMNIST_BALANCED, "emnist-balanced": EMNIST_BALANCED,
    "emnist-letters": UPPER, "notmnist": NOTMNIST, "notmnist-synthetic": NOTMNIST,
    "fashion-mnist": tuple(FASHION_CLASSES),
}
# A model file does not record the dataset it was trained on; its width (number of outputs) usually tells.
_BY_WIDTH = {10: DIGITS, 26: UPPER, 47: EMNIST_BALANCED, 62: EMNIST_BYCLASS}


class ClassesError(ValueError):
    """``--classes`` names no known dataset, or lists a number of classes the model does not have."""


def model_classes(model_name: str, width: int, override: str | None = None) -> tuple[str, ...]:
    """The name of each of a model's ``width`` outputs, in order.

    ``override`` (the ``--classes`` option) is a dataset name or a comma-separated list of names. Without
    it: the classes of the dataset the zoo trains ``model_name`` on, if it has ``width`` classes (so a
    ``notmnist_cnn`` reads A..J); else the usual set of that width (10 digits, 26 letters, EMNIST's 47 or
    62); else the output indices "0", "1", ...
    """
    if override is not None:
        if override in DATASET_CLASSES:
            classes = DATASET_CLASSES[override]
        else:
            classes = tuple(name.strip() for name in override.split(","))
            if len(classes) < 2 or not all(classes) or len(set(classes)) != len(classes):
                raise ClassesError(f"--classes: expected a dataset name ({', '.join(DATASET_CLASSES)}) or at "
                                   f"least two distinct comma-separated names, got {override!r}")
        if len(classes) != width:
            raise ClassesError(f"--classes {override}: {len(classes)} classes, but the model has {width} outputs")
        return classes
    if model_name in zoo.NAMES:
        home = DATASET_CLASSES[zoo.defaults(model_name).dataset]
        if len(home) == width:
            return home
    return _BY_WIDTH.get(width, tuple(str(index) for index in range(width)))
