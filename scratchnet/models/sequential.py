"""Sequential: a stack of layers trained end to end, with Keras's compile / fit / evaluate / predict.

    >>> model = Sequential([layers.Flatten(input_shape=(28, 28, 1)), layers.Dense(50, activation="relu"),
    ...                     layers.Dense(10, activation="softmax")])
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> history = model.fit(x_train, y_train, batch_size=100, epochs=5, validation_split=0.1)

One training step is: forward through every layer (training mode), the loss of the CURRENT weights,
backward through every layer in reverse (each fills its ``grads``), one optimizer update in place.
"""

import inspect
import math
import sys

import numpy as np

from scratchnet import distributed, engine
from scratchnet import layers as layers_module
from scratchnet import losses, optimizers
from scratchnet import metrics as metrics_module
from scratchnet.layers.base import ActivatedLayer, Layer, shape_tuple, snake_case

from .history import Callback, History
from .saving import register_model_class, save_model

__all__ = ["Sequential", "DivergenceError"]

DTYPES = ("float32", "float64")


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss (inf or nan); the message names the step."""


def check_dtype(dtype):
    """Return "float32" or "float64", else raise a ValueError naming the argument."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"`dtype` must be 'float32' or 'float64'. Received: dtype={dtype!r}")
    return name


def _check_positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


@register_model_class
class Sequential:
    """A linear stack of layers.

    Args:
        layers: layers to add, in order.
        input_shape: shape of one example (no batch axis); otherwise taken from the first layer's
            ``input_shape`` or, lazily, from the first batch seen.
        dtype: "float32" (default) or "float64": every weight, activation and gradient has this dtype;
            inputs are cast to it batch by batch as they enter (so a uint8 dataset is never copied whole;
            uint8 images are NOT rescaled: scale them yourself).
        seed: seeds the model's one ``numpy.random.Generator``; initial weights, dropout masks and the
            shuffling order come from independent streams spawned from it.
        name: the model's name.
    """

    def __init__(self, layers=None, *, input_shape=None, dtype="float32", seed=0, name="sequential"):
        self.name = name
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._shuffle_rng = self.rng.spawn(1)[0]
        self.input_shape = None if input_shape is None else shape_tuple(input_shape, "input_shape")
        self.layers = []
        self.built = False
        self.optimizer = self.loss = None
        self.metric_names, self._metric_functions = [], []
        self.stop_training = False
        self.distribution = distributed.SINGLE_PROCESS  # distributed.data_parallel(model) spreads fit over processes
        for layer in layers or []:
            self.add(layer)
        if self.input_shape is not None and not self.built:
            self.build()

    # ------------------------------------------------------------------------------------------
    # Building
    # ------------------------------------------------------------------------------------------

    def add(self, layer):
        """Append a layer (named after its class when unnamed: dense, dense_1, ...)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer. Received: {layer!r}")
        if isinstance(layer, layers_module.InputLayer):
            if self.layers:
                raise ValueError("An InputLayer must come first in a Sequential model.")
            self.input_shape = layer.input_shape
            return
        names = {existing.name for existing in self.layers}
        if layer.name is None:
            base = snake_case(type(layer).__name__)
            layer.name = base
            count = 0
            while layer.name in names:
                count += 1
                layer.name = f"{base}_{count}"
        elif layer.name in names:
            raise ValueError(f"All layers of a Sequential model must have unique names. Received: {layer.name!r}")
        if not self.layers and self.input_shape is None and layer.input_shape is not None:
            self.input_shape = layer.input_shape
        self.layers.append(layer)
        self.built = False
        if self.input_shape is not None:
            self.build()

    def build(self, input_shape=None):
        """Build every layer for examples of ``input_shape``.

        ``input_shape`` is the shape of one example, or Keras's ``(None, ...)`` with the batch axis.
        """
        if input_shape is not None:
            input_shape = tuple(input_shape)
            if input_shape and input_shape[0] is None:
                input_shape = input_shape[1:]
            self.input_shape = shape_tuple(input_shape, "input_shape")
        if self.input_shape is None:
            raise ValueError("Cannot build the model without an input shape: pass `input_shape` or call it on data.")
        shape = self.input_shape
        for layer in self.layers:
            if not layer.built:
                layer.build(shape, self.rng, self.dtype)
            elif tuple(layer.input_shape) != tuple(shape):
                raise ValueError(
                    f"Layer {layer.name!r} was built for inputs {layer.input_shape}, but receives {shape}"
                )
            shape = tuple(layer.output_shape(shape))
        self.output_shape = shape
        self._params = [p for layer in self.layers for p in layer.params.values()]
        # Backward stops at the first layer with weights: nothing below it needs a gradient.
        trainable = [i for i, layer in enumerate(self.layers) if layer.params]
        self._backward_stop = trainable[0] if trainable else len(self.layers)
        # ... and that first layer need not compute its own input gradient, if it can skip it.
        self._first_skips_dx = bool(trainable) and "need_dx" in inspect.signature(
            self.layers[self._backward_stop].backward).parameters
        self.built = True

    # ------------------------------------------------------------------------------------------
    # Compiling
    # ------------------------------------------------------------------------------------------

    def compile(self, optimizer="adam", loss=None, metrics=("accuracy",)):
        """Choose the optimizer ("adam", "sgd" or an object), the loss (a name or object) and the metrics."""
        if loss is None:
            raise ValueError("`loss` is required, e.g. loss='sparse_categorical_crossentropy'. Received: loss=None")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        metric_list = [] if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)
        self._metric_functions = [metrics_module.get(m, self.loss) for m in metric_list]
        self.metric_names = [m if isinstance(m, str) else m.__name__ for m in metric_list]

    def _fused(self):
        """True when the last layer's activation and the loss are computed together from the logits."""
        last = self.layers[-1]
        return isinstance(last, ActivatedLayer) and self.loss.fuses_with(last.activation)

    def _check_compiled(self):
        if self.loss is None:
            raise RuntimeError("The model must be compiled before training/evaluating: call model.compile(...)")

    # ------------------------------------------------------------------------------------------
    # Data at entry
    # ------------------------------------------------------------------------------------------

    def _check_inputs(self, x):
        """Return ``x`` as an array (not yet cast) after checking it is numeric and fits the model."""
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":  # floating, signed or unsigned integer (np.issubdtype, but cheaper)
            raise ValueError(f"`x` must be a numeric array. Received: x.dtype={x.dtype}")
        if x.ndim < 1 or len(x) == 0:
            raise ValueError(f"`x` must hold at least one example. Received: x.shape={x.shape}")
        if not self.built:
            self.build(x.shape[1:])
        if x.shape[1:] != self.input_shape:
            raise ValueError(
                f"Input of model {self.name!r} is incompatible: expected shape (None, "
                f"{', '.join(map(str, self.input_shape))}), received x.shape={x.shape}"
            )
        return x

    def _targets(self, y, n):
        y = self.loss.targets(y, self.output_shape, self.dtype)
        if len(y) != n:
            raise ValueError(f"`x` and `y` must hold the same number of examples. Received: {n} and {len(y)}")
        return y

    # ------------------------------------------------------------------------------------------
    # Forward, loss, backward
    # ------------------------------------------------------------------------------------------

    def _forward(self, x, training):
        x = x.astype(self.dtype, copy=False)
        with engine.step():
            for layer in self.layers:
                x = layer.forward(x, training=training)
        return x

    def _loss(self, y, y_pred, fused):
        """(loss, cache) of a batch, from the last layer's logits when fused (Keras's shortcut)."""
        if fused:
            return self.loss.forward(y, self.layers[-1].logits, from_logits=True)
        return self.loss.forward(y, y_pred)

    def _finite(self, loss):
        """The loss as a float; a DivergenceError naming the step when it is inf or nan."""
        loss = float(loss)
        if not math.isfinite(loss):
            raise DivergenceError(
                f"Training diverged: the loss became {loss} at step {self.optimizer.iterations + 1}. "
                "Try a smaller learning rate (or check the inputs are scaled)."
            )
        return loss

    def _train_batch(self, x, y, fused):
        """One step on a prepared batch; returns (loss as a float, outputs in training mode)."""
        with engine.step():
            if fused and self._is_logistic_regression(x, y):
                return self._train_logistic_regression(x, y)
            return self._train_layer_by_layer(x, y, fused)

    def _train_layer_by_layer(self, x, y, fused):
        """`_train_batch` for every model: forward, loss, backward layer by layer, one update."""
        y_pred = self._forward(x, training=True)
        loss, cache = self._loss(y, y_pred, fused)
        loss = self._finite(loss)
        dy = self.loss.backward(cache)
        del cache
        for layer in self.layers:
            layer.grads = {}  # last step's gradients are freed before this step's are made
        last = len(self.layers) - 1
        for index in range(last, min(self._backward_stop, last) - 1, -1):
            options = {"from_logits": True} if fused and index == last else {}
            if index == self._backward_stop and self._first_skips_dx:
                options["need_dx"] = False  # nothing below the first trainable layer needs a gradient
            dy = self.layers[index].backward(dy, **options)
            self.layers[index].release_caches()  # its activations are freed as the backward moves down
        for layer in self.layers[:min(self._backward_stop, last)]:
            layer.release_caches()
        grads = [layer.grads[key] for layer in self.layers for key in layer.params]
        loss = self.distribution.reduce_gradients(grads, loss)  # with several processes: the global batch's
        self.optimizer.apply(self._params, grads)
        return loss, y_pred

    def _is_logistic_regression(self, x, y):
        """True for logistic regression: one Dense unit with a sigmoid, binary cross-entropy from its logits."""
        if len(self.layers) != 1:
            return False
        layer = self.layers[0]
        return (type(layer) is layers_module.Dense and layer.activation == "sigmoid" and layer.units == 1
                and self.loss.LOGITS_OP == "sigmoid_binary_cross_entropy" and x.ndim == 2
                and np.shape(y) == (len(x), 1))

    def _train_logistic_regression(self, x, y):
        """`_train_batch` for logistic regression: its gradients come from one op, the textbook formula
        (`scratchnet.ops.losses.logistic_regression_gradients`), with the layer-by-layer step's values."""
        layer = self.layers[0]
        x = x.astype(self.dtype, copy=False)
        logits, dkernel, dbias = engine.logistic_regression_gradients(
            x, layer.params["kernel"], layer.params.get("bias"), y.astype(self.dtype, copy=False))
        loss = self._finite(self.loss.forward(y, logits, from_logits=True)[0])
        layer.logits = logits
        y_pred, layer._activation_cache = engine.sigmoid_forward(logits)
        layer.grads = {"kernel": dkernel, "bias": dbias} if layer.use_bias else {"kernel": dkernel}
        grads = [layer.grads[key] for key in layer.params]
        loss = self.distribution.reduce_gradients(grads, loss)
        self.optimizer.apply(self._params, grads)
        return loss, y_pred

    def train_step(self, x, y):
        """One optimizer update on the batch (x, y); returns the batch's loss before the update (a float)."""
        self._check_compiled()
        x = self._check_inputs(x)
        x, y = self.distribution.local_batch(x, self._targets(y, len(x)))  # this process's rows of the batch
        return self._train_batch(x, y, self._fused())[0]

    # ------------------------------------------------------------------------------------------
    # fit / evaluate / predict
    # ------------------------------------------------------------------------------------------

    def fit(self, x, y, batch_size=32, epochs=1, verbose=1, validation_split=0.0, validation_data=None,
            shuffle=True, steps=None, callbacks=None, seed=None):
        """Train for ``epochs`` passes over (x, y) in batches, stopping early after ``steps`` steps in total.

        Returns a ``History`` whose ``history`` has ``loss``, the metrics (e.g. ``accuracy``) and, with
        validation, ``val_loss`` and ``val_*``. ``verbose``: 0 silent, 1 a progress bar per epoch on
        stderr, 2 one line per epoch. ``seed`` (not in Keras) fixes the shuffling order of this call;
        by default it comes from the model's generator.

        Notes: as Keras, ``validation_split`` takes the LAST fraction of the examples (before shuffling),
        the training set is reshuffled every epoch, and the epoch's loss and metrics are the running means
        over its examples (each batch weighted by its size, as Keras's loss tracker).
        """
        self._check_compiled()
        batch_size = _check_positive_int(batch_size, "batch_size")
        epochs = _check_positive_int(epochs, "epochs")
        steps = _check_positive_int(steps, "steps", allow_none=True)
        x, y, validation = self._split_validation(x, y, validation_split, validation_data)
        history = History()
        hooks = [history, *(callbacks or [])]
        for hook in hooks:
            if not isinstance(hook, Callback):
                raise TypeError(f"`callbacks` must hold Callback objects. Received: {hook!r}")
            hook.set_model(self)
        shuffle_rng = self._shuffle_rng if seed is None else np.random.default_rng(seed)
        batches_per_epoch = math.ceil(len(x) / batch_size)
        verbose = verbose if self.distribution.is_chief else 0  # one progress display: rank 0's
        history.params = {"epochs": epochs, "steps": batches_per_epoch, "batch_size": batch_size, "verbose": verbose}
        self.stop_training, done, logs = False, 0, {}
        for hook in hooks:
            hook.on_train_begin()
        for epoch in range(epochs):
            for hook in hooks:
                hook.on_epoch_begin(epoch)
            order = shuffle_rng.permutation(len(x)) if shuffle else None
            total = batches_per_epoch if steps is None else min(batches_per_epoch, steps - done)
            bar = _progress_bar(total, f"Epoch {epoch + 1}/{epochs}", verbose == 1)
            logs = self._fit_epoch(x, y, order, batch_size, total, done, bar, hooks[1:])
            done += total
            if validation is not None:
                values = self._evaluate_prepared(*validation, batch_size)
                logs.update({f"val_{k}": v for k, v in zip(["loss", *self.metric_names], values)})
            if bar is not None:
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)
                bar.close()
            if verbose == 2:
                print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()),
                      file=sys.stderr)
            for hook in hooks:
                hook.on_epoch_end(epoch, logs)
            if self.stop_training or (steps is not None and done >= steps):
                break
        for hook in hooks:
            hook.on_train_end(logs)
        return history

    def _split_validation(self, x, y, validation_split, validation_data):
        """Prepared (x, y) for training and (x_val, y_val) or None, taking the LAST fraction as Keras."""
        if not 0 <= validation_split < 1:
            raise ValueError(f"`validation_split` must be in [0, 1). Received: validation_split={validation_split!r}")
        x = self._check_inputs(x)
        y = self._targets(y, len(x))
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(f"`validation_data` must be a tuple (x_val, y_val). Received: {type(validation_data)}")
            x_val = self._check_inputs(validation_data[0])
            return x, y, (x_val, self._targets(validation_data[1], len(x_val)))
        if validation_split == 0:
            return x, y, None
        split_at = int(math.floor(len(x) * (1.0 - validation_split)))
        if split_at in (0, len(x)):
            raise ValueError(f"validation_split={validation_split} of {len(x)} examples leaves an empty set")
        return x[:split_at], y[:split_at], (x[split_at:], y[split_at:])

    def _fit_epoch(self, x, y, order, batch_size, total, done, bar, callbacks):
        """Run ``total`` steps over (x, y) in ``order`` (None: as stored); return the epoch's running means."""
        fused = self._fused()
        loss_sum, metric_sums, seen = 0.0, [0.0] * len(self._metric_functions), 0
        for batch in range(total):
            rows = slice(batch * batch_size, (batch + 1) * batch_size)
            if order is not None:
                rows = order[rows]
            rows = self.distribution.local_rows(rows, len(x))  # with several processes: this one's part
            x_batch, y_batch = x[rows], y[rows]
            loss, y_pred = self._train_batch(x_batch, y_batch, fused)
            loss_sum, seen = loss_sum + loss * len(x_batch), seen + len(x_batch)
            for i, function in enumerate(self._metric_functions):
                metric_sums[i] += float(function(y_batch, y_pred).sum())
            if bar is None and not callbacks:
                continue
            logs = {"loss": loss_sum / seen, **{k: s / seen for k, s in zip(self.metric_names, metric_sums)}}
            if bar is not None:
                bar.update(1)
                if batch % 10 == 0 or batch == total - 1:
                    bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)
            for callback in callbacks:
                callback.on_train_batch_end(batch, {**logs, "batch_loss": loss, "step": done + batch + 1})
        loss_sum, seen, *metric_sums = self.distribution.reduce_sums([loss_sum, seen, *metric_sums])
        return {"loss": loss_sum / seen, **{k: s / seen for k, s in zip(self.metric_names, metric_sums)}}

    def _evaluate_prepared(self, x, y, batch_size):
        """[loss, *metrics] over prepared (x, y), in inference mode, each batch weighted by its size."""
        fused = self._fused()
        n = len(x)
        x, y = self.distribution.local_share(x, y)  # with several processes, each evaluates its share
        loss_sum, metric_sums = 0.0, [0.0] * len(self._metric_functions)
        for start in range(0, len(x), batch_size):
            x_batch, y_batch = x[start:start + batch_size], y[start:start + batch_size]
            y_pred = self._forward(x_batch, training=False)
            loss_sum += float(self._loss(y_batch, y_pred, fused)[0]) * len(x_batch)
            for i, function in enumerate(self._metric_functions):
                metric_sums[i] += float(function(y_batch, y_pred).sum())
        loss_sum, *metric_sums = self.distribution.reduce_sums([loss_sum, *metric_sums])
        return [loss_sum / n] + [s / n for s in metric_sums]

    def evaluate(self, x, y, batch_size=32, verbose=0):
        """Loss and metrics on (x, y) without dropout: ``[loss, accuracy]`` (just the loss with no metrics).

        Notes: ``verbose`` is accepted for Keras compatibility; nothing is printed (Keras prints a bar).
        """
        self._check_compiled()
        batch_size = _check_positive_int(batch_size, "batch_size")
        x = self._check_inputs(x)
        values = self._evaluate_prepared(x, self._targets(y, len(x)), batch_size)
        return values if self._metric_functions else values[0]

    def predict(self, x, batch_size=32, verbose=0):
        """Outputs of the last layer (e.g. class probabilities) for every example, without dropout."""
        return self._predict(x, batch_size, logits=False)

    def predict_logits(self, x, batch_size=32):
        """The last layer's outputs BEFORE its activation (e.g. the logits under a softmax)."""
        return self._predict(x, batch_size, logits=True)

    def _predict(self, x, batch_size, logits):
        batch_size = _check_positive_int(batch_size, "batch_size")
        x = self._check_inputs(x)
        outputs = []
        for start in range(0, len(x), batch_size):
            y = self._forward(x[start:start + batch_size], training=False)
            last = self.layers[-1]
            outputs.append(last.logits if logits and isinstance(last, ActivatedLayer) else y)
        return np.concatenate(outputs)

    def __call__(self, x, training=False):
        """Forward pass of one batch (no loss): ``model(x)``."""
        return self._forward(self._check_inputs(x), training=training)

    # ------------------------------------------------------------------------------------------
    # Weights, summary, config, saving
    # ------------------------------------------------------------------------------------------

    def _check_built(self):
        if not self.built:
            raise ValueError(
                f"Model {self.name!r} is not built yet: give `input_shape`, call build(input_shape), or fit it."
            )

    def count_params(self):
        """Total number of scalar weights."""
        self._check_built()
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self):
        """Copies of every weight array in Keras order: layer by layer, kernel then bias."""
        self._check_built()
        return [p.copy() for p in self._params]

    def set_weights(self, weights):
        """Copy ``weights`` (the list ``get_weights`` returns) into the model, checking every shape."""
        self._check_built()
        weights = list(weights)
        if len(weights) != len(self._params):
            raise ValueError(
                f"Model {self.name!r} expects {len(self._params)} weight arrays; received a list of {len(weights)}"
            )
        names = [f"{layer.name}/{key}" for layer in self.layers for key in layer.params]
        for name, param, value in zip(names, self._params, weights):
            if np.shape(value) != param.shape:
                raise ValueError(
                    f"Weight {name} has shape {param.shape}; received an array of shape {np.shape(value)}"
                )
        for param, value in zip(self._params, weights):
            param[...] = value  # in place: the optimizer's state stays attached to the same arrays

    def summary(self, print_fn=print):
        """Print (through ``print_fn``; None prints nothing) and return a Keras-style table of the layers."""
        self._check_built()
        names = [f" {layer.name} ({type(layer).__name__})" for layer in self.layers]
        widths = (max(29, *(len(name) + 1 for name in names)), 26, 10)
        rule = "_" * sum(widths)

        def row(*cells):
            return "".join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip()

        lines = [f'Model: "{self.name}"', rule, row(" Layer (type)", "Output Shape", "Param #"), "=" * len(rule)]
        for i, (name, layer) in enumerate(zip(names, self.layers)):
            shape = "(None, " + ", ".join(map(str, layer.output_shape(layer.input_shape))) + ")"
            lines.append(row(name, shape, f"{layer.count_params():,}"))
            lines.append("=" * len(rule) if i == len(self.layers) - 1 else "")
        total = self.count_params()
        lines += [f"Total params: {total:,}", f"Trainable params: {total:,}", "Non-trainable params: 0", rule]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def get_config(self):
        """Everything needed to rebuild the (untrained) model: name, dtype, seed, input shape, layers."""
        return {
            "name": self.name, "dtype": self.dtype, "seed": self.seed,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "layers": [layers_module.serialize(layer) for layer in self.layers],
        }

    @classmethod
    def from_config(cls, config):
        model = cls(name=config["name"], dtype=config["dtype"], seed=config["seed"])
        for layer_config in config["layers"]:
            model.add(layers_module.deserialize(layer_config))
        if config.get("input_shape") is not None and not model.built:
            model.build(config["input_shape"])
        return model

    def get_compile_config(self):
        """The compile() arguments as JSON-ready configs (None when not compiled)."""
        if self.loss is None:
            return None
        return {"optimizer": optimizers.serialize(self.optimizer), "loss": losses.serialize(self.loss),
                "metrics": list(self.metric_names)}

    def save(self, path):
        """Save config, weights and optimizer state to ONE ``.npz`` file (see ``scratchnet.models.saving``)."""
        save_model(self, path)

    def __repr__(self):
        return f"<Sequential name={self.name!r} layers={len(self.layers)} dtype={self.dtype}>"


def _progress_bar(total, description, enabled):
    """A tqdm bar on stderr, or None when disabled."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="step", file=sys.stderr, leave=True, dynamic_ncols=True)
