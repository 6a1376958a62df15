"""What the benchmarks measure, engine-neutral: each zoo model's batch, synthetic data, FLOP counts, op shapes.

Everything here is derived from `scratchnet.zoo` (the layer list of the built model), so a change to a zoo
model changes its benchmark. Data are synthetic (speed does not depend on the pixels), drawn from a seeded
``numpy.random.Generator``; the TensorFlow side gets the very same arrays.

FLOPs are counted analytically: a multiply-add is 2 FLOPs; a forward pass counts only the convolutions and
the dense layers (bias, activations, pooling and the loss are noise next to them); a training step counts
3x the forward pass (forward, input gradient, weight gradient), the usual convention.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from scratchnet import zoo

MODELS = tuple(zoo.NAMES)
"""Every zoo model, in MODELS.md order."""

SLOW_MODELS = ("emnist_cnn", "deep_mnist")
"""The models issue 5 allows up to 2x TensorFlow for now (the others must beat it)."""

INFERENCE_IMAGES = 1000
"""Inference benchmark: this many images..."""

INFERENCE_BATCH = 100
"""...predicted in batches of this size by both engines."""

LOGREG_FULL_BATCH = 60000
"""logreg trains on the whole MNIST training set at every step."""


def batch_size(name: str) -> int:
    """The training batch of model ``name`` as MODELS.md gives it (logreg: the full 60,000)."""
    recipe = zoo.defaults(name)
    return recipe.batch_size or LOGREG_FULL_BATCH


def num_classes(name: str) -> int:
    """Number of classes the zoo builds ``name`` with (1 output for the binary logreg)."""
    return 62 if name == "emnist_cnn" else 10


def dtype(name: str) -> np.dtype:
    """The model's float dtype (float64 for logreg, float32 for the rest)."""
    return np.dtype(zoo.defaults(name).dtype)


@cache
def plan(name: str) -> tuple[LayerInfo, ...]:
    """The layers of zoo model ``name`` with the per-example input/output shape of each."""
    model = zoo.build(name)
    return tuple(
        LayerInfo(
            index=i,
            name=layer.name,
            kind=type(layer).__name__,
            input_shape=tuple(layer.input_shape),
            output_shape=tuple(layer.output_shape(layer.input_shape)),
            kernel_shape=tuple(layer.params["kernel"].shape) if "kernel" in layer.params else None,
            strides=tuple(getattr(layer, "strides", ())) or None,
            padding=getattr(layer, "padding", None),
            pool_size=tuple(getattr(layer, "pool_size", ())) or None,
            activation=getattr(layer, "activation", None),
            num_params=int(sum(p.size for p in layer.params.values())),
            rate=getattr(layer, "rate", None),
        )
        for i, layer in enumerate(model.layers)
    )


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a zoo model: its kind and per-example shapes (no batch axis)."""

    index: int
    name: str
    kind: str
    input_shape: tuple
    output_shape: tuple
    kernel_shape: tuple | None
    strides: tuple | None
    padding: str | None
    pool_size: tuple | None
    activation: str | None
    num_params: int
    rate: float | None = None

    def macs(self) -> int:
        """Multiply-adds of this layer's forward pass for ONE example."""
        if self.kind == "Conv2D":
            kh, kw, ci, co = self.kernel_shape
            oh, ow, _ = self.output_shape
            return oh * ow * kh * kw * ci * co
        if self.kind == "Dense":
            rows = int(np.prod(self.input_shape[:-1], dtype=np.int64)) if len(self.input_shape) > 1 else 1
            return rows * self.kernel_shape[0] * self.kernel_shape[1]
        return 0


def num_params(name: str) -> int:
    return sum(layer.num_params for layer in plan(name))


def forward_flops(name: str, n: int) -> float:
    """FLOPs of a forward pass of ``n`` examples (2 x multiply-adds of the convs and dense layers)."""
    return 2.0 * n * sum(layer.macs() for layer in plan(name))


def train_flops(name: str, n: int | None = None) -> float:
    """FLOPs of one training step on ``n`` examples (default: the model's batch): 3 x forward."""
    return 3.0 * forward_flops(name, batch_size(name) if n is None else n)


def make_data(name: str, n: int, seed: int = 0):
    """Synthetic (x, y) for ``n`` examples of model ``name``, in the model's dtype and label format.

    logreg: raw pixels 0..255 with a column of ones in front, float64 (n, 785), labels float (n, 1), about
    10% ones. Others: pixels uniform in [0, 1), float32, (n, 784) or (n, 28, 28, 1), int labels (n,).
    """
    rng = np.random.default_rng(seed)
    shape = plan(name)[0].input_shape
    if name == "logreg":
        x = rng.random((n, *shape))  # made in place: one (n, 785) float64 array, no temporaries
        x *= 256.0
        np.floor(x, out=x)
        x[:, 0] = 1.0
        y = (rng.random((n, 1)) < 0.1).astype(np.float64)
        return x, y
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, num_classes(name), size=n).astype(np.int64)
    return x, y


@dataclass(frozen=True)
class OpCase:
    """One hot op at one zoo shape: ``conv2d`` (kernel_shape, strides, padding) or ``max_pool2d``."""

    op: str            # "conv2d" or "max_pool2d"
    models: tuple      # the zoo models (and layer names) that run this exact op at this shape
    x_shape: tuple     # (N, H, W, C), N the model's training batch
    kernel_shape: tuple | None
    pool_size: tuple | None
    strides: tuple
    padding: str
    y_shape: tuple

    @property
    def id(self) -> str:
        n, h, w, c = self.x_shape
        if self.op == "conv2d":
            kh, kw, ci, co = self.kernel_shape
            return f"conv{kh}x{kw}s{self.strides[0]}{self.padding[0]}-{n}x{h}x{w}x{ci}-{co}"
        return f"pool{self.pool_size[0]}s{self.strides[0]}{self.padding[0]}-{n}x{h}x{w}x{c}"

    @property
    def where(self) -> str:
        return ", ".join(self.models)

    def forward_flops(self) -> float:
        if self.op != "conv2d":
            return 0.0
        kh, kw, ci, co = self.kernel_shape
        n, oh, ow, _ = self.y_shape
        return 2.0 * n * oh * ow * kh * kw * ci * co

    def backward_flops(self) -> float:
        """dx and dkernel: two products the size of the forward's."""
        return 2.0 * self.forward_flops()


def op_cases(models=MODELS) -> tuple[OpCase, ...]:
    """Every conv2d and max-pool of the given zoo models at the model's training batch, shapes deduplicated."""
    cases: dict[tuple, OpCase] = {}
    for name in models:
        n = batch_size(name)
        for layer in plan(name):
            if layer.kind not in ("Conv2D", "MaxPooling2D"):
                continue
            op = "conv2d" if layer.kind == "Conv2D" else "max_pool2d"
            x_shape = (n, *layer.input_shape)
            key = (op, x_shape, layer.kernel_shape, layer.pool_size, layer.strides, layer.padding)
            where = f"{name}/{layer.name}"
            if key in cases:
                old = cases[key]
                cases[key] = OpCase(op, old.models + (where,), *key[1:], y_shape=old.y_shape)
            else:
                cases[key] = OpCase(op, (where,), x_shape, layer.kernel_shape, layer.pool_size, layer.strides,
                                    layer.padding, y_shape=(n, *layer.output_shape))
    return tuple(cases.values())


def op_data(case: OpCase, seed: int = 0):
    """Random float32 (x, kernel or None, dy) for an op case; values distinct so max-pool has no ties."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape, dtype=np.float32)
    kernel = None
    if case.kernel_shape is not None:
        kernel = (0.1 * rng.standard_normal(case.kernel_shape, dtype=np.float32))
    dy = rng.standard_normal(case.y_shape, dtype=np.float32)
    return x, kernel, dy
