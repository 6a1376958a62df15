"""The pictures people look at after training: curves, confusion matrix, sample and prediction grids, t-SNE.

Every function draws one PNG with matplotlib's Agg renderer (no screen needed; pyplot and its global state
are never used), writes it atomically (a temporary file, then ``os.replace``) and returns its path.
:func:`save_all` draws them all for ``python -m scratchnet.train --plots DIR``.

Images may be given as the model takes them, (N, 28, 28, 1), (N, 28, 28), (N, 784), or logreg's
(N, 785) with the ones column in front; labels as integers (N,), (N, 1) or one-hot (N, K).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from scratchnet.fileio import atomic_path

RIGHT, WRONG = "tab:green", "tab:red"


# ---------------------------------------------------------------------------------------- helpers
def _save(fig: Figure, path) -> Path:
    """Write ``fig`` to ``path`` as PNG through a temporary file in the same folder; returns the path."""
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path, suffix=".png") as temporary:
        fig.savefig(temporary, format="png", dpi=fig.dpi)
    return path


def as_images(x) -> np.ndarray:
    """(N, 28, 28) float images from model inputs (see the module docstring); other square sizes work too."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    flat = x.reshape(n, -1)
    if x.ndim == 2 and flat.shape[1] == 785:  # logreg: a ones column, then the raw pixels
        flat = flat[:, 1:]
    side = int(round(np.sqrt(flat.shape[1])))
    if side * side != flat.shape[1]:
        raise ValueError(f"cannot show inputs of shape {x.shape[1:]} as square images")
    return flat.reshape(n, side, side)


def as_labels(y) -> np.ndarray:
    """Integer class labels (N,) from integers, (N, 1) columns or one-hot rows."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    return y.reshape(-1).astype(np.int64)


def predict_classes(model, x, batch_size: int = 1000) -> np.ndarray:
    """The model's predicted class for every input: argmax of its outputs (a 0.5 cut for one sigmoid)."""
    outputs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if outputs.ndim == 1 or outputs.shape[1] == 1:
        return (outputs.reshape(-1) > 0.5).astype(np.int64)
    return outputs.argmax(axis=1)


def _name(k: int, class_names) -> str:
    return str(class_names[k]) if class_names is not None and 0 <= k < len(class_names) else str(k)


def _grid(n: int) -> tuple[int, int]:
    """Rows and columns of a near-square grid holding ``n`` cells."""
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def _show(ax, image) -> None:
    ax.imshow(image, cmap="gray", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


# ----------------------------------------------------------------------------------------- the plots
def plot_history(history, path) -> Path:
    """Loss and accuracy per epoch, training and validation, side by side.

    ``history``: a ``History`` (its ``.history`` dict) or the dict itself, with lists under ``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy`` (any may be missing).
    """
    curves = getattr(history, "history", history) or {}
    fig = Figure(figsize=(10, 4), dpi=100)
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy")):
        for key, label, style in ((metric, "train", "o-"), (f"val_{metric}", "validation", "s--")):
            values = curves.get(key)
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, style, label=label)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, path)


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts (K, K): row = true class, column = predicted class; K is at least ``num_classes``."""
    y_true, y_pred = as_labels(y_true), as_labels(y_pred)
    k = max(num_classes or 0, int(max(y_true.max(initial=0), y_pred.max(initial=0)) + 1))
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def plot_confusion_matrix(y_true, y_pred, path, class_names=None) -> Path:
    """The confusion matrix (rows true, columns predicted), each cell annotated with its count (up to 20
    classes; beyond that the cells are too small to read)."""
    matrix = confusion_matrix(y_true, y_pred, len(class_names) if class_names is not None else None)
    k = len(matrix)
    side = min(16, max(6, 0.6 * k))
    fig = Figure(figsize=(side, side * 0.85), dpi=100)
    ax = fig.subplots()
    shown = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(shown, ax=ax, fraction=0.046)
    names = [_name(i, class_names) for i in range(k)]
    ax.set_xticks(range(k), names, fontsize=8 if k > 20 else 10)
    ax.set_yticks(range(k), names, fontsize=8 if k > 20 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"confusion matrix ({matrix.sum()} images, accuracy {accuracy:.2%})")
    if k <= 20:
        threshold = matrix.max() / 2
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > threshold else "black")
    fig.tight_layout()
    return _save(fig, path)


def plot_samples(x, y, path, class_names=None, n: int = 25) -> Path:
    """A grid of the first ``n`` images (25: 5x5) titled with their labels."""
    images, labels = as_images(x)[:n], as_labels(y)[:n]
    rows, cols = _grid(len(images))
    fig = Figure(figsize=(1.6 * cols, 1.75 * rows), dpi=100)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, label in zip(axes, images, labels):
        _show(ax, image)
        ax.axis("on")
        ax.set_title(_name(int(label), class_names), fontsize=11)
    fig.suptitle(f"{len(images)} sample images with their labels")
    fig.tight_layout()
    return _save(fig, path)


def plot_predictions(x, y_true, y_pred, path, class_names=None, n: int = 196) -> Path:
    """A grid of the first ``n`` images (196: 14x14), each titled with its prediction, green if right and
    red if wrong (then the true label follows in brackets)."""
    images = as_images(x)[:n]
    y_true, y_pred = as_labels(y_true)[:n], as_labels(y_pred)[:n]
    rows, cols = _grid(len(images))
    fig = Figure(figsize=(0.95 * cols, 1.05 * rows + 0.6), dpi=100)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, truth, guess in zip(axes, images, y_true, y_pred):
        _show(ax, image)
        ax.axis("on")
        right = truth == guess
        title = _name(int(guess), class_names) + ("" if right else f" ({_name(int(truth), class_names)})")
        ax.set_title(title, fontsize=8, color=RIGHT if right else WRONG, pad=2)
        for spine in ax.spines.values():
            spine.set_color(RIGHT if right else WRONG)
    wrong = int((y_true != y_pred).sum())
    fig.suptitle(f"predictions on {len(images)} validation images: {wrong} wrong (red, true label in brackets)")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return _save(fig, path)


def most_confused_pairs(y_true, y_pred, top: int = 6) -> list[tuple[int, int, int]]:
    """The ``top`` most frequent mistakes as (true class, predicted class, count), most frequent first."""
    matrix = confusion_matrix(y_true, y_pred)
    np.fill_diagonal(matrix, 0)
    order = np.argsort(-matrix, axis=None, kind="stable")[:top]
    pairs = [(int(i), int(j), int(matrix[i, j])) for i, j in zip(*np.unravel_index(order, matrix.shape))]
    return [pair for pair in pairs if pair[2] > 0]


def plot_most_confused(x, y_true, y_pred, path, class_names=None, top: int = 6, examples: int = 8) -> Path:
    """One row per most-confused pair ("true 4 read as 9, 23 times") with up to ``examples`` of its images."""
    images, y_true, y_pred = as_images(x), as_labels(y_true), as_labels(y_pred)
    pairs = most_confused_pairs(y_true, y_pred, top)
    rows = max(1, len(pairs))
    fig = Figure(figsize=(1.2 * examples + 2.6, 1.35 * rows + 0.6), dpi=100)
    axes = np.array(fig.subplots(rows, examples, squeeze=False))
    for ax in axes.ravel():
        ax.axis("off")
    if not pairs:
        axes[0, 0].text(0, 0.5, "no mistakes", fontsize=14, transform=axes[0, 0].transAxes)
    for row, (truth, guess, count) in enumerate(pairs):
        chosen = np.flatnonzero((y_true == truth) & (y_pred == guess))[:examples]
        for col, index in enumerate(chosen):
            _show(axes[row, col], images[index])
            axes[row, col].axis("on")
        axes[row, 0].axis("on")
        axes[row, 0].set_ylabel(f"true {_name(truth, class_names)}\nread {_name(guess, class_names)}\n"
                                f"({count}x)", rotation=0, ha="right", va="center", fontsize=10,
                                color=WRONG)
    fig.suptitle("the most-confused pairs, with examples")
    fig.tight_layout()
    return _save(fig, path)


def plot_tsne(x, y, path, class_names=None, n: int = 2000, seed: int = 0) -> Path:
    """A 2-D t-SNE map of ``n`` randomly chosen images (raw pixels), coloured by label. Slow (about half a
    minute for 2,000 images on 2 cores), hence opt-in; needs scikit-learn (the ``dev`` extra)."""
    try:
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE
    except ImportError:
        raise ImportError("the t-SNE picture needs scikit-learn: pip install scikit-learn") from None
    images, labels = as_images(x), as_labels(y)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(images), size=min(n, len(images)), replace=False)
    flat, labels = images[chosen].reshape(len(chosen), -1).astype(np.float64), labels[chosen]
    # Reducing to 50 dimensions first is the usual recipe: faster, and removes pixel noise.
    reduced = PCA(n_components=min(50, *flat.shape), random_state=seed).fit_transform(flat)
    points = TSNE(n_components=2, init="pca", perplexity=min(30.0, (len(flat) - 1) / 3),
                  random_state=seed).fit_transform(reduced)
    fig = Figure(figsize=(9, 8), dpi=100)
    ax = fig.subplots()
    classes = np.unique(labels)
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "gist_ncar"]
    for k, label in enumerate(classes):
        mine = labels == label
        colour = cmap(k if len(classes) <= 10 else k / len(classes))
        ax.scatter(points[mine, 0], points[mine, 1], s=6, color=colour, label=_name(int(label), class_names))
        if len(classes) <= 20:
            centre = np.median(points[mine], axis=0)
            ax.text(centre[0], centre[1], _name(int(label), class_names), fontsize=16, weight="bold",
                    ha="center", va="center", color="black", alpha=0.8)
    if len(classes) <= 20:
        ax.legend(markerscale=3, loc="best", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t-SNE of {len(flat)} images (pixels, PCA to 50 dimensions first)")
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ all
def save_all(directory, model, history, x_val, y_val, class_names=None, tsne: bool = False) -> list[Path]:
    """Draw every picture for a trained ``model`` into ``directory``; returns the paths written.

    ``history`` is what ``fit`` returned (or None); ``x_val`` / ``y_val`` are validation inputs as the
    model takes them and their labels. Files: history.png, confusion_matrix.png, samples.png,
    predictions.png, most_confused.png, and with ``tsne=True`` tsne.png.
    """
    directory = Path(directory)
    y_true = as_labels(y_val)
    y_pred = predict_classes(model, x_val)
    written = []
    if history is not None:
        written.append(plot_history(history, directory / "history.png"))
    written.append(plot_confusion_matrix(y_true, y_pred, directory / "confusion_matrix.png", class_names))
    written.append(plot_samples(x_val, y_true, directory / "samples.png", class_names))
    written.append(plot_predictions(x_val, y_true, y_pred, directory / "predictions.png", class_names))
    written.append(plot_most_confused(x_val, y_true, y_pred, directory / "most_confused.png", class_names))
    if tsne:
        written.append(plot_tsne(x_val, y_true, directory / "tsne.png", class_names))
    return written
