"""The PyTorch bodies of the benchmarks: twins of the zoo models in ``torch.nn``, run the fastest way found here.

PyTorch is the second yardstick beside TensorFlow (the CPU wheel, the ``bench`` extra). Each twin has the
zoo model's architecture, layer for layer, and starts from the scratchnet model's own initial weights
(copied, so the three engines' twins compute the same function); it returns logits, and the losses are
the fused ``torch.nn.functional`` cross-entropies from logits.

How PyTorch runs here (`SETTINGS`, measured with ``python -m benchmarks.torch_side``; the figures are in
docs/performance.md):

* threads: ``torch.set_num_threads(N)`` with N = scratchnet's thread count (every usable core, or
  ``SCRATCHNET_NUM_THREADS``), the count TensorFlow's intra-op pool also gets;
* memory format: channels_last for the convolutional models (oneDNN's native layout; the flatten before
  the first dense layer then reads the activations in the order memory holds them, without a copy);
* ``torch.compile``: off; the compiled twins were not faster on these small models (and cost tens of
  seconds of compilation per model);
* optimizers: ``torch.optim.SGD`` / ``Adam`` (learning rate of the zoo recipe, Adam's epsilon 1e-7 as
  Keras's) in the implementation that measured fastest: Adam ``fused=True`` (one C++ pass over all the
  weights: 3x faster than the for-loop on deep_mnist's 3.3 M weights), SGD the plain for-loop (the zoo's
  SGD models hold few tensors; foreach and fused were no faster);
* training step: ``zero_grad``, forward, loss, ``backward``, ``step``, returning ``loss.item()``; inference
  and single-image latency run under ``torch.inference_mode()``.

Importing this module does not import torch; the first ``make_*`` call does.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from benchmarks import workloads


@dataclass(frozen=True)
class Settings:
    """How one model's PyTorch twin runs."""

    channels_last: bool = False
    compile: bool = False
    optimizer_impl: str = "default"  # "default" (for-loop), "foreach" or "fused"

    def describe(self) -> str:
        return (f"{'channels_last' if self.channels_last else 'contiguous (NCHW)'}, "
                f"{'torch.compile' if self.compile else 'eager'}, optimizer {self.optimizer_impl}")


def _settings(name: str) -> Settings:
    from scratchnet import zoo

    return Settings(channels_last=any(layer.kind == "Conv2D" for layer in workloads.plan(name)), compile=False,
                    optimizer_impl="fused" if zoo.defaults(name).optimizer == "adam" else "default")


SETTINGS = {name: _settings(name) for name in workloads.MODELS}
"""The configuration each model's twin is benchmarked in (see the module docstring for why)."""


def pytorch():
    """Import and return torch, with scratchnet's thread count set once (intra-op threads)."""
    import torch

    if not getattr(pytorch, "configured", False):
        from scratchnet.runtime import threads

        torch.set_num_threads(threads.num_threads())
        pytorch.configured = True
    return torch


def thread_count() -> int:
    """The intra-op threads torch runs with in this process."""
    return pytorch().get_num_threads()


# ------------------------------------------------------------------------------------------------------
# The twins
# ------------------------------------------------------------------------------------------------------
def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: (before, after), the extra one after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@functools.cache
def _layer_classes():
    """The layers the zoo needs that ``torch.nn`` lacks (defined on first use: importing torch is slow)."""
    torch = pytorch()
    nn = torch.nn

    class BiasAdd(nn.Module):
        """A per-channel bias on its own (notmnist_cnn adds its conv biases after pooling)."""

        def __init__(self, channels, dtype):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(channels, dtype=dtype))

        def forward(self, x):
            return x + self.bias.view(1, -1, *([1] * (x.dim() - 2)))

    class Flatten(nn.Module):
        """(N, C, H, W) -> (N, C*H*W) in the order memory holds the values, so no copy is made.

        channels_last memory is (N, H, W, C): the features come out in scratchnet's (h, w, c) order;
        contiguous memory gives (c, h, w), and `copy_weights` permutes the next dense kernel's rows.
        """

        def __init__(self, channels_last):
            super().__init__()
            self.channels_last = channels_last

        def forward(self, x):
            if x.dim() == 4 and self.channels_last:
                x = x.permute(0, 2, 3, 1)
            return x.flatten(1)

    class Twin(nn.Sequential):
        """The zoo model's layers in order, outputting logits; `output` is the last layer's activation."""

        def __init__(self, name, layers, weighted, channels_last, output):
            super().__init__(*layers)
            self.model_name = name
            self.weighted = weighted  # [(LayerInfo, module holding its weights)], in zoo order
            self.channels_last = channels_last
            self.output = output

    return BiasAdd, Flatten, Twin


def build_twin(name: str, channels_last: bool | None = None):
    """A ``torch.nn`` twin of zoo model ``name`` (logits out) in the zoo's dtype; weights not yet copied."""
    torch = pytorch()
    nn = torch.nn
    BiasAdd, Flatten, Twin = _layer_classes()
    channels_last = SETTINGS[name].channels_last if channels_last is None else channels_last
    dtype = getattr(torch, workloads.dtype(name).name)
    plan = workloads.plan(name)
    layers, weighted = [], []

    def activation(kind):
        if kind in (None, "linear"):
            return None
        modules = {"relu": lambda: nn.ReLU(inplace=True), "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
                   "softmax": lambda: nn.Softmax(dim=1)}
        if kind not in modules:
            raise ValueError(f"no PyTorch twin for activation {kind!r} of model {name!r}")
        return modules[kind]()

    for info in plan:
        last = info.index == len(plan) - 1
        if info.kind in ("Conv2D", "MaxPooling2D"):
            h, w = info.input_shape[:2]
            kh, kw = info.kernel_shape[:2] if info.kind == "Conv2D" else info.pool_size
            sh, sw = info.strides
            (top, bottom), (left, right) = ((_same_padding(h, kh, sh), _same_padding(w, kw, sw))
                                            if info.padding == "same" else ((0, 0), (0, 0)))
            symmetric = top == bottom and left == right
            if not symmetric:
                fill = 0.0 if info.kind == "Conv2D" else float("-inf")
                layers.append(nn.ConstantPad2d((left, right, top, bottom), fill))
            padding = (top, left) if symmetric else (0, 0)
            if info.kind == "Conv2D":
                module = nn.Conv2d(info.kernel_shape[2], info.kernel_shape[3], (kh, kw), stride=(sh, sw),
                                   padding=padding, bias=_has_bias(info), dtype=dtype)
                layers.append(module)
                weighted.append((info, module))
            else:
                layers.append(nn.MaxPool2d((kh, kw), stride=(sh, sw), padding=padding))
        elif info.kind == "Dense":
            module = nn.Linear(info.kernel_shape[0], info.kernel_shape[1], bias=_has_bias(info), dtype=dtype)
            layers.append(module)
            weighted.append((info, module))
        elif info.kind == "BiasAdd":
            module = BiasAdd(info.input_shape[-1], dtype)
            layers.append(module)
            weighted.append((info, module))
        elif info.kind == "Activation":
            pass
        elif info.kind == "Flatten":
            layers.append(Flatten(channels_last))
        elif info.kind == "Dropout":
            layers.append(nn.Dropout(info.rate))
        else:
            raise ValueError(f"no PyTorch twin for layer kind {info.kind!r} of model {name!r}")
        if not last:
            module = activation(info.activation)
            if module is not None:
                layers.append(module)
    output = plan[-1].activation
    twin = Twin(name, layers, weighted, channels_last, output)
    if channels_last:
        twin = twin.to(memory_format=torch.channels_last)
    return twin


def _has_bias(info):
    """A Conv2D or Dense layer has a bias when it holds more weights than its kernel."""
    return info.num_params > int(np.prod(info.kernel_shape))


def copy_weights(twin, model) -> None:
    """Copy the weights of scratchnet model ``model`` (the zoo model the twin was built from) into ``twin``.

    Kernels change layout: HWIO -> OIHW for convolutions, (in, out) -> (out, in) for dense layers; the
    dense layer after a flatten of (h, w, c) activations gets its rows in (c, h, w) order when the twin
    runs in contiguous (NCHW) memory.
    """
    torch = pytorch()
    plan = workloads.plan(twin.model_name)
    with torch.no_grad():
        for info, module in twin.weighted:
            params = model.layers[info.index].params
            if info.kind == "Conv2D":
                module.weight.copy_(torch.from_numpy(np.ascontiguousarray(params["kernel"].transpose(3, 2, 0, 1))))
            elif info.kind == "Dense":
                kernel = params["kernel"]
                flattened = _flattened_shape(plan, info.index)
                if flattened is not None and not twin.channels_last:
                    h, w, c = flattened
                    kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
                module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
            if "bias" in params:
                module.bias.copy_(torch.from_numpy(params["bias"]))


def _flattened_shape(plan, index):
    """The (h, w, c) shape a Flatten turned into dense layer ``index``'s input, or None."""
    for info in reversed(plan[:index]):
        if info.kind == "Flatten":
            return info.input_shape if len(info.input_shape) == 3 else None
        if info.kind not in ("Dropout", "Activation"):
            return None
    return None


def twin_of(name: str, seed: int = 0, settings: Settings | None = None):
    """The twin of ``name`` with the initial weights of ``zoo.build(name, seed=seed)``."""
    from scratchnet import zoo

    settings = settings or SETTINGS[name]
    twin = build_twin(name, channels_last=settings.channels_last)
    copy_weights(twin, zoo.build(name, seed=seed))
    return twin


def to_input(x: np.ndarray, channels_last: bool):
    """A NumPy batch as the twin takes it: NHWC images become (N, C, H, W) in the twin's memory format."""
    torch = pytorch()
    tensor = torch.from_numpy(x)
    if tensor.dim() == 4:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        tensor = tensor.permute(0, 3, 1, 2).contiguous(memory_format=layout)
    return tensor


def _forward(twin, settings):
    return pytorch().compile(twin) if settings.compile else twin


def _output_activation(twin):
    torch = pytorch()
    if twin.output == "sigmoid":
        return torch.sigmoid
    if twin.output == "softmax":
        return lambda logits: torch.softmax(logits, dim=1)
    return lambda logits: logits


def _optimizer(name, parameters, settings):
    torch = pytorch()
    from scratchnet import zoo

    recipe = zoo.defaults(name)
    impl = {"default": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    if settings.optimizer_impl not in impl:
        raise ValueError(f"`optimizer_impl` must be one of {tuple(impl)}; received: {settings.optimizer_impl!r}")
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=recipe.learning_rate, **impl[settings.optimizer_impl])
    return torch.optim.Adam(parameters, lr=recipe.learning_rate, betas=(0.9, 0.999), eps=1e-7,
                            **impl[settings.optimizer_impl])


def _loss_fn(name):
    functional = pytorch().nn.functional
    if name == "logreg":
        return functional.binary_cross_entropy_with_logits
    return functional.cross_entropy


# ------------------------------------------------------------------------------------------------------
# The bodies
# ------------------------------------------------------------------------------------------------------
def make_train_step(name: str, n: int | None = None, seed: int = 0, settings: Settings | None = None):
    """One training step of the twin of ``name`` on a fixed batch; returns the loss."""
    torch = pytorch()
    settings = settings or SETTINGS[name]
    n = workloads.batch_size(name) if n is None else n
    twin = twin_of(name, seed, settings)
    twin.train()
    optimizer = _optimizer(name, twin.parameters(), settings)
    loss_fn = _loss_fn(name)
    x, y = workloads.make_data(name, n, seed)
    x, y = to_input(x, settings.channels_last), torch.from_numpy(y)
    forward = _forward(twin, settings)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(forward(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return train_step


def make_inference(name: str, n: int = workloads.INFERENCE_IMAGES, batch: int = workloads.INFERENCE_BATCH,
                   seed: int = 0, settings: Settings | None = None):
    """Predict ``n`` images in batches of ``batch`` (softmax/sigmoid outputs), inputs already tensors."""
    torch = pytorch()
    settings = settings or SETTINGS[name]
    twin = twin_of(name, seed, settings).eval()
    x, _ = workloads.make_data(name, n, seed)
    batches = [to_input(x[i:i + batch], settings.channels_last) for i in range(0, n, batch)]
    forward, activation = _forward(twin, settings), _output_activation(twin)

    def predict():
        with torch.inference_mode():
            return np.concatenate([activation(forward(b)).numpy() for b in batches])

    return predict


def make_latency(name: str, seed: int = 0, settings: Settings | None = None):
    """One image from NumPy to NumPy probabilities: the input converted, the forward, the output activation."""
    torch = pytorch()
    settings = settings or SETTINGS[name]
    twin = twin_of(name, seed, settings).eval()
    x, _ = workloads.make_data(name, 1, seed)
    forward, activation = _forward(twin, settings), _output_activation(twin)

    def predict_one():
        with torch.inference_mode():
            return activation(forward(to_input(x, settings.channels_last))).numpy()

    return predict_one


def make_optimizer_update(name: str, seed: int = 0, settings: Settings | None = None):
    """``optimizer.step()`` on all the twin's weights (random gradients of the right shapes)."""
    torch = pytorch()
    settings = settings or SETTINGS[name]
    twin = twin_of(name, seed, settings)
    parameters = list(twin.parameters())
    rng = np.random.default_rng(seed)
    for p in parameters:
        grad = torch.from_numpy((1e-3 * rng.standard_normal(tuple(p.shape))).astype(workloads.dtype(name)))
        p.grad = grad.contiguous(memory_format=torch.channels_last) if p.dim() == 4 and settings.channels_last \
            else grad
    optimizer = _optimizer(name, parameters, settings)

    def update():
        optimizer.step()

    return update


# ------------------------------------------------------------------------------------------------------
# Choosing the settings: python -m benchmarks.torch_side
# ------------------------------------------------------------------------------------------------------
VARIANTS = {
    "eager-nchw": Settings(channels_last=False),
    "eager-channels-last": Settings(channels_last=True),
    "compile-nchw": Settings(channels_last=False, compile=True),
    "compile-channels-last": Settings(channels_last=True, compile=True),
}


def _interleaved_medians(bodies: list, seconds: float, max_rounds: int = 2000) -> list[float]:
    """Median time of each body, their rounds interleaved (A, B, A, B, ...) so load drift hits all alike."""
    for body in bodies:
        body()
    times = [[] for _ in bodies]
    stop = time.perf_counter() + seconds * len(bodies)
    while len(times[0]) < 5 or (time.perf_counter() < stop and len(times[0]) < max_rounds):
        for body, spent in zip(bodies, times):
            start = time.perf_counter()
            body()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def main(argv=None) -> int:
    """Time each model's train step, inference and one-image latency in each variant, in this process.

    The compiled variants take tens of seconds to compile each body; all four variants of all seven models
    take about a quarter of an hour on two cores.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.torch_side", description=main.__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(workloads.MODELS), help="comma-separated zoo models")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--optimizers", default="default,foreach,fused",
                        help="comma-separated optimizer implementations to compare on the update alone")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per variant and measurement")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    impls = [v.strip() for v in args.optimizers.split(",") if v.strip()]
    for bad, allowed, what in ((set(models) - set(workloads.MODELS), workloads.MODELS, "model"),
                               (set(variants) - set(VARIANTS), tuple(VARIANTS), "variant"),
                               (set(impls) - {"default", "foreach", "fused"}, ("default", "foreach", "fused"),
                                "optimizer implementation")):
        if bad:
            parser.error(f"unknown {what} {sorted(bad)}; expected some of {', '.join(allowed)}")
    torch = pytorch()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians in ms of interleaved rounds "
          f"(first call, which compiles, in brackets)")
    print("| model | measurement | " + " | ".join(variants) + " |")
    print("|---|---|" + "---:|" * len(variants))
    kinds = {"train step": make_train_step, f"inference ({workloads.INFERENCE_IMAGES})": make_inference,
             "one image": make_latency}
    for name in models:
        for kind, make in kinds.items():
            bodies, firsts = [], []
            for label in variants:
                body = make(name, settings=replace(VARIANTS[label], optimizer_impl=SETTINGS[name].optimizer_impl))
                start = time.perf_counter()
                body()
                firsts.append(time.perf_counter() - start)
                bodies.append(body)
            medians = _interleaved_medians(bodies, args.seconds)
            print(f"| {name} | {kind} | " + " | ".join(f"{1e3 * m:.3f} ({f:.1f} s)" for m, f in zip(medians, firsts))
                  + " |", flush=True)
        if len(impls) > 1:
            bodies = [make_optimizer_update(name, settings=replace(SETTINGS[name], optimizer_impl=impl))
                      for impl in impls]
            medians = _interleaved_medians(bodies, args.seconds)
            print(f"| {name} | optimizer update alone, " + " / ".join(impls) + " | "
                  + " / ".join(f"{1e3 * m:.3f}" for m in medians) + " |" + " |" * (len(variants) - 1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
