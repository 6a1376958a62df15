"""The scratchnet bodies of the benchmarks: each ``make_*`` builds everything and returns a no-argument callable.

Building (model, data) happens in ``make_*``; the returned callable is exactly what gets timed. Its first
call also compiles (or loads from numba's disk cache) the kernels: the harness times that call apart.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from benchmarks import workloads
from scratchnet import engine, zoo


def make_train_step(name: str, n: int | None = None, seed: int = 0, backend: str = "numba"):
    """One ``model.train_step(x, y)`` of zoo model ``name`` on a fixed batch of ``n`` (default: its batch)."""
    engine.set_backend(backend)
    n = workloads.batch_size(name) if n is None else n
    model = zoo.build(name, seed=seed)
    x, y = workloads.make_data(name, n, seed)

    def train_step():
        return model.train_step(x, y)

    return train_step


def make_inference(name: str, n: int = workloads.INFERENCE_IMAGES, batch: int = workloads.INFERENCE_BATCH,
                   seed: int = 0, backend: str = "numba"):
    """``model.predict`` on ``n`` images in batches of ``batch`` (returns the (n, classes) outputs)."""
    engine.set_backend(backend)
    model = zoo.build(name, seed=seed)
    x, _ = workloads.make_data(name, n, seed)

    def predict():
        return model.predict(x, batch_size=batch, verbose=0)

    return predict


def make_latency(name: str, seed: int = 0, backend: str = "numba"):
    """One image through a saved-and-loaded model with ``model.predict``, as `scratchnet.predict` reads one.

    The image is the NumPy array the preparation hands over ((1, 28, 28, 1), or (1, 784) for the flat models);
    the result is the (1, classes) probabilities as NumPy.
    """
    from scratchnet.models import load_model

    engine.set_backend(backend)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"{name}.npz")
        zoo.build(name, seed=seed).save(path)
        model = load_model(path, compile=False)
    x, _ = workloads.make_data(name, 1, seed)

    def predict_one():
        return model.predict(x, verbose=0)  # as scratchnet.predict and serve call it: no progress line

    return predict_one


def make_op(case: workloads.OpCase, direction: str, backend: str = "numba", seed: int = 0):
    """The forward or backward of one hot op at one shape, through `scratchnet.engine` with ``backend``.

    The backward body times only the backward call; its cache comes from one forward run here, outside.
    """
    engine.set_backend(backend)
    x, kernel, dy = workloads.op_data(case, seed)
    if case.op == "conv2d":
        def forward():
            return engine.conv2d_forward(x, kernel, case.strides, case.padding)
        backward_op = "conv2d_backward"
    else:
        def forward():
            return engine.max_pool2d_forward(x, case.pool_size, case.strides, case.padding)
        backward_op = "max_pool2d_backward"
    if direction == "forward":
        return forward
    if direction != "backward":
        raise ValueError(f"`direction` must be 'forward' or 'backward'; received: {direction!r}")
    _, cache = forward()
    backward = getattr(engine, backward_op)

    def backward_call():
        return backward(dy, cache)

    return backward_call


def make_optimizer_update(name: str, seed: int = 0):
    """The model's optimizer applying one update to all its weights (random gradients of the right shapes)."""
    model = zoo.build(name, seed=seed)
    params = [p for layer in model.layers for p in layer.params.values()]
    rng = np.random.default_rng(seed)
    grads = [(1e-3 * rng.standard_normal(p.shape)).astype(p.dtype) for p in params]
    optimizer = model.optimizer

    def update():
        optimizer.apply(params, grads)

    return update
