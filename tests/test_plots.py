"""scratchnet.plots: every picture is a real, non-empty PNG, written atomically, from any input layout."""

import numpy as np
import pytest
from PIL import Image

from scratchnet import plots
from scratchnet.models import History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FakeModel:
    """Predicts the true label, except that every 4 is read as a 9 and every 7 as a 1 (mistakes to plot)."""

    input_shape = (None, 28, 28, 1)

    def __init__(self, labels):
        self.labels = labels

    def predict(self, x, batch_size=32, verbose="auto"):
        guess = np.where(self.labels == 4, 9, np.where(self.labels == 7, 1, self.labels))[:len(x)]
        return np.eye(10, dtype=np.float32)[guess] * 0.9 + 0.01


@pytest.fixture(scope="module")
def digits():
    """200 blobby fake "digits" (N, 28, 28, 1) in [0, 1] with labels 0..9."""
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 10
    images = np.zeros((200, 28, 28, 1), np.float32)
    for image, label in zip(images, labels):
        image[6 + label:10 + label, 6:22, 0] = 1.0
        image[..., 0] += 0.1 * rng.random((28, 28), dtype=np.float32)
    return np.clip(images, 0, 1), labels


def history():
    record = History()
    for epoch, (loss, accuracy) in enumerate([(0.9, 0.7), (0.5, 0.85), (0.3, 0.9)]):
        record.on_epoch_end(epoch, {"loss": loss, "accuracy": accuracy, "val_loss": loss + 0.1,
                                    "val_accuracy": accuracy - 0.05})
    return record


def assert_png(path, min_size=(200, 200)):
    assert path.exists() and path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # something was drawn
    assert not any(p.name.startswith(".") for p in path.parent.iterdir())  # no temporary files left


def test_save_all_writes_every_picture(tmp_path, digits):
    x, y = digits
    written = plots.save_all(tmp_path / "pictures", FakeModel(y), history(), x, y)
    names = [path.name for path in written]
    assert names == ["history.png", "confusion_matrix.png", "samples.png", "predictions.png",
                     "most_confused.png"]
    for path in written:
        assert_png(path)


def test_history_accepts_a_dict_and_missing_validation(tmp_path):
    assert_png(plots.plot_history({"loss": [1.0, 0.5], "accuracy": [0.5, 0.8]}, tmp_path / "h.png"))
    assert_png(plots.plot_history({}, tmp_path / "empty.png"))


def test_confusion_matrix_counts_and_most_confused_pairs():
    y_true = np.array([4, 4, 4, 7, 7, 1])
    y_pred = np.array([9, 9, 4, 1, 7, 1])
    matrix = plots.confusion_matrix(y_true, y_pred, 10)
    assert matrix[4, 9] == 2 and matrix[4, 4] == 1 and matrix[7, 1] == 1 and matrix.sum() == 6
    assert plots.most_confused_pairs(y_true, y_pred) == [(4, 9, 2), (7, 1, 1)]


def test_inputs_in_every_layout_become_images(tmp_path, digits):
    x, y = digits
    flat = x.reshape(len(x), -1)
    with_ones = np.hstack([np.ones((len(x), 1), np.float32), flat * 255])  # logreg's layout
    for layout in (x, x[..., 0], flat, with_ones):
        assert plots.as_images(layout).shape == (200, 28, 28)
    assert np.array_equal(plots.as_labels(np.eye(10)[y]), y)
    assert np.array_equal(plots.as_labels(y[:, None]), y)
    one_hot_path = plots.plot_samples(flat, np.eye(10)[y], tmp_path / "s.png", class_names=list("ABCDEFGHIJ"))
    assert_png(one_hot_path)


def test_predictions_grid_and_confusion_matrix_handle_many_classes(tmp_path):
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 62, 500), rng.integers(0, 62, 500)
    assert_png(plots.plot_confusion_matrix(y_true, y_pred, tmp_path / "cm62.png"))
    x = rng.random((500, 28, 28), dtype=np.float32)
    assert_png(plots.plot_predictions(x, y_true, y_pred, tmp_path / "p.png"))
    assert_png(plots.plot_most_confused(x, y_true, y_true, tmp_path / "none.png"), (200, 100))  # no mistakes


def test_tsne_picture(tmp_path, digits):
    pytest.importorskip("sklearn")
    x, y = digits
    assert_png(plots.plot_tsne(x[:120], y[:120], tmp_path / "tsne.png", n=120))
