"""Sequential: a stack of layers trained end to end, with Keras's compile / fit / evaluate / predict.

    >>> model = Sequential([layers.Input(shape=(28, 28, 1)), layers.Flatten(),
    ...                     layers.Dense(50, activation="relu"), layers.Dense(10, activation="softmax")])
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> history = model.fit(x_train, y_train, batch_size=100, epochs=5, validation_split=0.1)

One training step is: forward through every layer (training mode), the loss of the CURRENT weights,
backward through every layer in reverse (each fills its ``grads``), one optimizer update in place of the
trainable weights.
"""

import inspect
import math

import numpy as np

from scratchnet import callbacks as callbacks_module
from scratchnet import distributed, engine, losses, optimizers
from scratchnet import layers as layers_module
from scratchnet import metrics as metrics_module
from scratchnet.layers.base import (
    FUNCTIONAL_API_MESSAGE,
    ActivatedLayer,
    Layer,
    shape_tuple,
    snake_case,
)
from scratchnet.layers.weights import Tensor, Weight, layer_weights

from . import progress
from .registry import register_model_class
from .training import Batches, FitLoop, Running, should_validate

__all__ = ["Sequential", "Model", "DivergenceError"]

DTYPES = ("float32", "float64")
DEFAULT_BATCH_SIZE = 32  # Keras's, when batch_size is None


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss (inf or nan); the message names the step."""


class Model:
    """Keras's ``Model``: the Functional API and subclassed models, which scratchnet does not have.

    Constructing one (or a subclass) raises, pointing to ``Sequential``.
    """

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(FUNCTIONAL_API_MESSAGE)


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


_SKIPS_DX = {}  # layer class -> whether its backward takes need_dx (read once per class, not per step)


def _skips_dx(layer):
    cls = type(layer)
    if cls not in _SKIPS_DX:
        _SKIPS_DX[cls] = "need_dx" in inspect.signature(layer.backward).parameters
    return _SKIPS_DX[cls]


@register_model_class
class Sequential:
    """A linear stack of layers.

    Args:
        layers: layers to add, in order; the first may be ``Input(shape=...)``.
        input_shape: shape of one example (no batch axis); otherwise taken from an ``Input``, from the
            first layer's ``input_shape`` or, lazily, from the first batch seen.
        dtype: "float32" (default) or "float64": every weight, activation and gradient has this dtype;
            inputs are cast to it batch by batch as they enter (so a uint8 dataset is never copied whole;
            uint8 images are NOT rescaled: scale them yourself).
        seed: seeds the model's one ``numpy.random.Generator``; initial weights, dropout masks and the
            shuffling order come from independent streams spawned from it. None: 0, or the next seed
            drawn after ``utils.set_random_seed``.
        name: the model's name.
        trainable: False freezes every layer (see ``trainable``).

    Attributes:
        input_shape / output_shape: Keras's shapes with the batch axis, ``(None, 28, 28, 1)``.
        layers: the layers (an ``Input`` is not listed, as in Keras 3).
    """

    def __init__(self, layers=None, *, input_shape=None, dtype="float32", seed=None, name="sequential",
                 trainable=True):
        if seed is None:
            from scratchnet.utils import next_model_seed

            seed = next_model_seed()
        self.name = name
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._shuffle_rng = self.rng.spawn(1)[0]
        self._example_shape = None if input_shape is None else shape_tuple(input_shape, "input_shape")
        self._output_example_shape = None
        self.layers = []
        self.built = False
        self.optimizer = self.loss = None
        self.metric_names, self._metrics = [], []
        self._optimizer_params = None  # the arrays the optimizer's state belongs to, in order
        self.stop_training = False
        self.history = None
        self._raise_on_non_finite = True
        self._batch_running = None  # running means of train_on_batch / test_on_batch
        self.distribution = distributed.SINGLE_PROCESS  # distributed.data_parallel(model) spreads fit over processes
        for layer in layers or []:
            self.add(layer)
        if not trainable:
            self.trainable = False
        if self._example_shape is not None and not self.built:
            self.build()

    # ------------------------------------------------------------------------------------------
    # Building
    # ------------------------------------------------------------------------------------------

    def add(self, layer):
        """Append a layer (named after its class when unnamed: dense, dense_1, ...).

        A ``Sequential`` given as a layer adds its layers, shared with it (as Keras shares a nested
        model's layers): ``Sequential([model, layers.Softmax()])``. ``model.layers`` then lists those
        layers, where Keras lists the nested model as one layer.
        """
        if isinstance(layer, Sequential):
            if not self.layers and self._example_shape is None:
                self._example_shape = layer._example_shape
            for inner in layer.layers:
                self.add(inner)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer. Received: {layer!r}")
        if isinstance(layer, layers_module.InputLayer):
            if self.layers:
                raise ValueError("An Input / InputLayer must come first in a Sequential model.")
            self._example_shape = layer.input_shape
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
        if not self.layers and self._example_shape is None and layer.input_shape is not None:
            self._example_shape = layer.input_shape
        self.layers.append(layer)
        self.built = False
        if self._example_shape is not None:
            self.build()

    def pop(self, rebuild=True):
        """Remove the last layer and return it, as Keras; the model keeps its compile settings."""
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        layer = self.layers.pop()
        self.built = False
        if rebuild and self.layers and self._example_shape is not None:
            self.build()
        return layer

    def build(self, input_shape=None):
        """Build every layer for examples of ``input_shape``.

        ``input_shape`` is Keras's ``(None, ...)`` with the batch axis, or the shape of one example.
        """
        if input_shape is not None:
            input_shape = tuple(input_shape)
            if input_shape and input_shape[0] is None:
                input_shape = input_shape[1:]
            self._example_shape = shape_tuple(input_shape, "input_shape")
        if self._example_shape is None:
            raise ValueError("Cannot build the model without an input shape: pass `input_shape` or call it on data.")
        shape = self._example_shape
        for layer in self.layers:
            if not layer.built:
                layer.build(shape, self.rng, self.dtype)
            elif tuple(layer.input_shape) != tuple(shape):
                raise ValueError(
                    f"Layer {layer.name!r} was built for inputs {layer.input_shape}, but receives {shape}"
                )
            shape = tuple(layer.output_shape(shape))
        self._output_example_shape = shape
        self._params = [p for layer in self.layers for p in layer.params.values()]
        self.built = True

    @property
    def input_shape(self):
        """Keras's input shape with the batch axis, ``(None, 28, 28, 1)``; None before it is known."""
        return None if self._example_shape is None else (None, *self._example_shape)

    @property
    def output_shape(self):
        """Keras's output shape with the batch axis, ``(None, 10)``; None before the model is built."""
        return None if not self.built else (None, *self._output_example_shape)

    def get_layer(self, name=None, index=None):
        """A layer by ``name`` or by ``index`` (an ``Input`` is not counted), as Keras."""
        if index is not None and name is not None:
            raise ValueError(f"Provide only a layer name or a layer index. Received: index={index}, name={name}.")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(self.layers)} layers.")
            return self.layers[index]
        if name is not None:
            for layer in self.layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in self.layers]}.")
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    @property
    def trainable(self):
        """False when every layer is frozen. Setting it sets every layer's ``trainable``, as in Keras."""
        return any(layer.trainable for layer in self.layers) if self.layers else True

    @trainable.setter
    def trainable(self, value):
        for layer in self.layers:
            layer.trainable = bool(value)

    # ------------------------------------------------------------------------------------------
    # Compiling
    # ------------------------------------------------------------------------------------------

    def compile(self, optimizer="adam", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Choose the optimizer (a name or an object), the loss (a name or object) and the metrics.

        As in Keras, no metric is tracked unless ``metrics`` names one (e.g. ``metrics=["accuracy"]``).
        ``run_eagerly``, ``steps_per_execution``, ``jit_compile`` and ``auto_scale_loss`` are accepted for
        Keras scripts and change nothing here (scratchnet always runs eagerly, one step at a time).

        Notes: scratchnet's default optimizer is Adam (Keras's is RMSprop).
        """
        if loss is None:
            raise ValueError("`loss` is required, e.g. loss='sparse_categorical_crossentropy'. Received: loss=None")
        if loss_weights is not None or weighted_metrics is not None:
            raise NotImplementedError("`loss_weights` and `weighted_metrics` are not supported: a Sequential "
                                      "model has one output, and its metrics are never weighted")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        metric_list = [] if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)
        self._metrics = [metrics_module.get(m, self.loss) for m in metric_list]
        self.metric_names = [m if isinstance(m, str) else getattr(m, "name", None) or m.__name__
                             for m in metric_list]
        self._optimizer_params = None

    @property
    def compiled(self):
        """True once ``compile`` has run."""
        return self.loss is not None

    @property
    def metrics_names(self):
        """``["loss", *metric names]`` once compiled (``[]`` before), in the order ``evaluate`` returns them.

        Notes: Keras 3 answers ``["loss", "compile_metrics"]`` here; this is Keras 2's list, the one that
        zips with ``evaluate``'s result.
        """
        return ["loss", *self.metric_names] if self.compiled else []

    @property
    def metrics(self):
        """The compiled metrics (functions or metric objects), without the loss."""
        return list(self._metrics)

    def _fused(self):
        """True when the last layer's activation and the loss are computed together from the logits."""
        last = self.layers[-1]
        fuses_with = getattr(self.loss, "fuses_with", None)
        return isinstance(last, ActivatedLayer) and fuses_with is not None and fuses_with(last.activation)

    def _check_compiled(self):
        if self.loss is None:
            raise RuntimeError("The model must be compiled before training/evaluating: call model.compile(...)")

    # ------------------------------------------------------------------------------------------
    # Data at entry
    # ------------------------------------------------------------------------------------------

    def _check_inputs(self, x):
        """Return ``x`` as an array (not yet cast) after checking it is numeric and fits the model."""
        if x is None:
            raise ValueError("`x` is required: an array of examples (datasets and generators are not supported)")
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":  # floating, signed or unsigned integer (np.issubdtype, but cheaper)
            raise ValueError(f"`x` must be a numeric array. Received: x.dtype={x.dtype}")
        if x.ndim < 1 or len(x) == 0:
            raise ValueError(f"`x` must hold at least one example. Received: x.shape={x.shape}")
        if not self.built:
            self.build(x.shape[1:])
        if x.shape[1:] != self._example_shape:
            raise ValueError(
                f"Input of model {self.name!r} is incompatible: expected shape (None, "
                f"{', '.join(map(str, self._example_shape))}), received x.shape={x.shape}"
            )
        return x

    def _targets(self, y, n):
        if y is None:
            raise ValueError("`y` is required: the targets (labels) of the examples in `x`")
        y = self.loss.targets(y, self._output_example_shape, self.dtype)
        if len(y) != n:
            raise ValueError(f"`x` and `y` must hold the same number of examples. Received: {n} and {len(y)}")
        return y

    def _sample_weights(self, y, n, sample_weight=None, class_weight=None):
        """One weight per example (None when all are 1), from ``sample_weight`` or ``class_weight``.

        ``class_weight`` maps a class id to a weight (classes it omits weigh 1), the class being the
        integer label, the argmax of a one-hot row, or a rounded 0/1 label, as Keras.
        """
        if sample_weight is not None and class_weight is not None:
            raise ValueError("Arguments `sample_weight` and `class_weight` cannot be specified at the same time.")
        if sample_weight is not None:
            weights = np.asarray(sample_weight, dtype=self.dtype)
            if weights.ndim == 2 and weights.shape[1] == 1:
                weights = weights[:, 0]
            if weights.shape != (n,):
                raise ValueError(f"`sample_weight` needs one weight per example, shape ({n},). "
                                 f"Received: sample_weight.shape={np.shape(sample_weight)}")
            if not np.all(np.isfinite(weights)) or weights.min() < 0:
                raise ValueError("`sample_weight` must hold finite, non-negative weights")
            return weights
        if class_weight is None:
            return None
        if not isinstance(class_weight, dict):
            raise ValueError(f"`class_weight` must be a dict from class id to weight. Received: {class_weight!r}")
        y = np.asarray(y)
        ids = np.argmax(y, axis=-1) if y.ndim > 1 and y.shape[-1] != 1 else np.round(y.reshape(n)).astype(np.int64)
        weights = np.ones(n, dtype=self.dtype)
        for label, weight in class_weight.items():
            weights[ids == int(label)] = weight
        return weights

    def _prepare(self, x, y, sample_weight=None, class_weight=None):
        """(x, y, weights) ready for batching: x checked (not cast), y in the loss's form, weights or None."""
        x = self._check_inputs(x)
        y = self._targets(y, len(x))
        return x, y, self._sample_weights(y, len(x), sample_weight, class_weight)

    # ------------------------------------------------------------------------------------------
    # Forward, loss, backward
    # ------------------------------------------------------------------------------------------

    def _forward(self, x, training):
        x = x.astype(self.dtype, copy=False)
        with engine.step():
            for layer in self.layers:
                x = layer.forward(x, training=training)
        return x

    def _loss(self, y, y_pred, fused, sample_weight=None):
        """(loss, cache) of a batch, from the last layer's logits when fused (Keras's shortcut)."""
        weighting = {} if sample_weight is None else {"sample_weight": sample_weight}
        if fused:
            return self.loss.forward(y, self.layers[-1].logits, from_logits=True, **weighting)
        return self.loss.forward(y, y_pred, **weighting)

    def _finite(self, loss):
        """The loss as a float; a DivergenceError naming the step when it is inf or nan.

        With a ``TerminateOnNaN`` callback the value is returned as it is: the callback stops ``fit``.
        """
        loss = float(loss)
        if not math.isfinite(loss) and self._raise_on_non_finite:
            raise DivergenceError(
                f"Training diverged: the loss became {loss} at step {self.optimizer.iterations + 1}. "
                "Try a smaller learning rate (or check the inputs are scaled)."
            )
        return loss

    def _trainable_params(self):
        """The arrays the optimizer updates, in Keras order: the params of every layer not frozen."""
        return [layer.params[key] for layer in self.layers if layer.trainable for key in layer.params]

    def _apply_gradients(self, loss):
        """One optimizer update of the trainable weights from the gradients the layers hold; returns the loss
        (with several processes, the global batch's: the gradients and the loss are reduced over them)."""
        params = self._trainable_params()
        if not params:
            return loss
        self._sync_optimizer(params)
        grads = [layer.grads[key] for layer in self.layers if layer.trainable for key in layer.params]
        loss = self.distribution.reduce_gradients(grads, loss)  # one process: nothing changes
        self.optimizer.apply(params, grads)
        return loss

    def _sync_optimizer(self, params):
        """Keep the optimizer's per-weight state with its weight when the trainable set changes.

        Freezing, unfreezing, ``pop`` or ``add`` after training change which arrays the optimizer sees; the
        state (momentum, Adam's moments) of a weight that stays trainable stays with it, a newly trainable
        weight starts fresh, as a Keras optimizer keys its state by variable.
        """
        if self._optimizer_params is not None and [id(p) for p in params] != [id(p) for p in self._optimizer_params]:
            slots = getattr(self.optimizer, "_slots", None)
            if slots is not None:
                by_id = {id(p): s for p, s in zip(self._optimizer_params, slots)}
                self.optimizer._slots = [by_id[id(p)] if id(p) in by_id else self.optimizer._make_slots(p)
                                         for p in params]
        self._optimizer_params = list(params)

    def _train_batch(self, x, y, fused, sample_weight=None):
        """One step on a prepared batch; returns (loss as a float, outputs in training mode)."""
        with engine.step(hands_over_gradients=True):  # each layer's dy is used by that layer alone
            if fused and sample_weight is None and self._is_logistic_regression(x, y):
                return self._train_logistic_regression(x, y)
            return self._train_layer_by_layer(x, y, fused, sample_weight)

    def _train_layer_by_layer(self, x, y, fused, sample_weight=None):
        """`_train_batch` for every model: forward, loss, backward layer by layer, one update."""
        y_pred = self._forward(x, training=True)
        loss, cache = self._loss(y, y_pred, fused, sample_weight)
        loss = self._finite(loss)
        dy = self.loss.backward(cache)
        del cache
        for layer in self.layers:
            layer.grads = {}  # last step's gradients are freed before this step's are made
        # Backward stops at the first layer with trainable weights: nothing below it needs a gradient ...
        trainable = [i for i, layer in enumerate(self.layers) if layer.params and layer.trainable]
        stop = trainable[0] if trainable else len(self.layers)
        last = len(self.layers) - 1
        for index in range(last, stop - 1, -1):
            options = {"from_logits": True} if fused and index == last else {}
            if index == stop and _skips_dx(self.layers[index]):
                options["need_dx"] = False  # ... and that first layer need not compute its input gradient
            dy = self.layers[index].backward(dy, **options)
            self.layers[index].release_caches()  # its activations are freed as the backward moves down
        for layer in self.layers[:min(stop, last + 1)]:
            layer.release_caches()
        loss = self._apply_gradients(loss)
        return loss, y_pred

    def _is_logistic_regression(self, x, y):
        """True for logistic regression: one Dense unit with a sigmoid, binary cross-entropy from its logits."""
        if len(self.layers) != 1:
            return False
        layer = self.layers[0]
        return (type(layer) is layers_module.Dense and layer.activation == "sigmoid" and layer.units == 1
                and layer.trainable and getattr(self.loss, "LOGITS_OP", None) == "sigmoid_binary_cross_entropy"
                and x.ndim == 2 and np.shape(y) == (len(x), 1))

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
        loss = self._apply_gradients(loss)
        return loss, y_pred

    def train_step(self, x, y, sample_weight=None):
        """One optimizer update on the batch (x, y); returns the batch's loss before the update (a float)."""
        self._check_compiled()
        x, y, weights = self._prepare(x, y, sample_weight)
        if weights is None:
            x, y = self.distribution.local_batch(x, y)  # this process's rows of the batch
        else:
            x, y, weights = self.distribution.local_batch(x, y, weights)
        return self._train_batch(x, y, self._fused(), weights)[0]

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One update on the batch; returns ``[loss, *metrics]`` (or a dict) as Keras does: running means
        over every ``*_on_batch`` call since ``reset_metrics()`` (``fit`` and ``evaluate`` start afresh)."""
        self._check_compiled()
        x, y, weights = self._prepare(x, y, sample_weight, class_weight)
        loss, y_pred = self._train_batch(x, y, self._fused(), weights)
        return self._on_batch_result(loss, y, y_pred, return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss and metrics of one batch in inference mode, accumulated as ``train_on_batch``'s."""
        self._check_compiled()
        x, y, weights = self._prepare(x, y, sample_weight)
        y_pred = self._forward(x, training=False)
        loss = float(self._loss(y, y_pred, self._fused(), weights)[0])
        return self._on_batch_result(loss, y, y_pred, return_dict)

    def predict_on_batch(self, x):
        """The outputs for one batch, as ``predict`` without batching or printing."""
        return self._forward(self._check_inputs(x), training=False)

    def reset_metrics(self):
        """Start the running means of ``train_on_batch`` / ``test_on_batch`` afresh."""
        self._batch_running = None

    def _on_batch_result(self, loss, y, y_pred, return_dict):
        if getattr(self, "_batch_running", None) is None:
            self._batch_running = Running(self)
        self._batch_running.add(loss, y, y_pred)
        logs = self._batch_running.logs()
        if return_dict:
            return dict(sorted(logs.items()))
        values = [logs[name] for name in self.metrics_names]
        return values if self._metrics else values[0]

    # ------------------------------------------------------------------------------------------
    # fit / evaluate / predict
    # ------------------------------------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1, *,
            steps=None, seed=None):
        """Train for ``epochs`` passes over (x, y) in batches; returns a ``History``.

        ``history.history`` has ``loss``, the metrics (e.g. ``accuracy``) and, with validation,
        ``val_loss`` and ``val_*``, keys in alphabetical order (as Keras 3). Keras's arguments mean what
        they mean in Keras:

        * ``batch_size`` None is 32; ``verbose`` 0 silent, 1 a progress bar, 2 a line per epoch, "auto"
          1 on a terminal and 2 otherwise (see ``scratchnet.models.progress``);
        * ``validation_split`` takes the LAST fraction of the examples (before shuffling);
          ``validation_data`` is ``(x_val, y_val)`` or ``(x_val, y_val, val_sample_weight)``;
          ``validation_freq`` k validates after every k-th epoch; ``validation_steps`` and
          ``validation_batch_size`` bound the validation batches;
        * ``sample_weight`` (one weight per example) or ``class_weight`` (class id -> weight) weight each
          example's loss: the batch loss is ``sum w_n loss_n / N``; metrics are not weighted;
        * ``initial_epoch`` k resumes a run: the epochs are k .. epochs - 1;
        * ``steps_per_epoch`` s makes an epoch s batches; consecutive epochs walk on through one shuffled
          pass over the data, a new pass starting when one is used up (an epoch that meets the end of a
          pass is cut short, with a warning, as Keras does with arrays).

        scratchnet's own, keyword-only: ``steps`` stops after that many updates in total; ``seed`` fixes
        this call's shuffling order (by default it comes from the model's generator).

        Notes: the training set is reshuffled for every pass; the epoch's loss and metrics are running
        means over its examples (each batch weighted by its size, as Keras's loss tracker).
        """
        self._check_compiled()
        batch_size = _check_positive_int(DEFAULT_BATCH_SIZE if batch_size is None else batch_size, "batch_size")
        epochs = _check_positive_int(epochs, "epochs")
        steps = _check_positive_int(steps, "steps", allow_none=True)
        steps_per_epoch = _check_positive_int(steps_per_epoch, "steps_per_epoch", allow_none=True)
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) or initial_epoch < 0:
            raise ValueError(
                f"`initial_epoch` must be a non-negative integer. Received: initial_epoch={initial_epoch!r}")
        verbose = progress.resolve_verbose(verbose) if self.distribution.is_chief else 0  # one display: rank 0's
        if sample_weight is not None and class_weight is not None:
            raise ValueError("Arguments `sample_weight` and `class_weight` cannot be specified at the same time.")
        x, y, weights, validation = self._split_validation(x, y, sample_weight, validation_split, validation_data)
        weights = self._sample_weights(y, len(x), None, class_weight) if class_weight is not None else weights

        batches_per_pass = math.ceil(len(x) / batch_size)
        epoch_steps = steps_per_epoch or batches_per_pass
        history, hooks = self._callback_list(callbacks, verbose, epochs=epochs, steps=epoch_steps, history=True)
        shuffle_rng = self._shuffle_rng if seed is None else np.random.default_rng(seed)
        batches = Batches(len(x), batch_size, shuffle, shuffle_rng)
        fused = self._fused()

        self.stop_training, epoch_logs = False, {}
        self.reset_metrics()
        # Where the loop stands, for a checkpoint (scratchnet.checkpoint), which may also move it on
        # on_train_begin to resume a run: epoch, batch within it, updates done, the epoch's running means.
        loop = self.fit_loop = FitLoop(batches, history, initial_epoch, lambda: Running(self))
        hooks.on_train_begin()
        try:
            for epoch in range(loop.epoch, epochs):
                resumed = loop.running is not None
                hooks.on_epoch_begin(epoch)
                loop.epoch, loop.running = epoch, loop.running or Running(self)
                running, first = loop.running, loop.batch
                limit = epoch_steps - first if steps is None else min(epoch_steps - first, steps - loop.done)
                for batch, rows in enumerate(batches.take(limit, steps_per_epoch is not None or resumed), first):
                    hooks.on_train_batch_begin(batch)
                    rows = self.distribution.local_rows(rows, len(x))  # with several processes: this one's part
                    x_batch, y_batch = x[rows], y[rows]
                    w_batch = None if weights is None else weights[rows]
                    loss, y_pred = self._train_batch(x_batch, y_batch, fused, w_batch)
                    running.add(loss, y_batch, y_pred)
                    loop.done, loop.batch = loop.done + 1, batch + 1
                    done = loop.done
                    hooks.on_train_batch_end(batch, {**running.logs(), "batch_loss": loss, "step": done})
                    if self.stop_training:
                        break
                running.reduce(self.distribution)
                epoch_logs = running.logs()
                if validation is not None and should_validate(epoch, validation_freq):
                    values = self._evaluate_prepared(*validation, validation_batch_size or batch_size,
                                                     validation_steps, hooks)
                    epoch_logs.update({f"val_{key}": value for key, value in values.items()})
                epoch_logs = dict(sorted(epoch_logs.items()))
                loop.running, loop.batch, loop.epoch = None, 0, epoch + 1
                hooks.on_epoch_end(epoch, epoch_logs)
                if self.stop_training or (steps is not None and loop.done >= steps):
                    break
        finally:
            self._raise_on_non_finite = True
        hooks.on_train_end(epoch_logs)
        return history

    def _callback_list(self, callbacks, verbose, epochs, steps, history=False):
        """The user's callbacks, then (for fit) a History, then the progress printer, as Keras orders them."""
        hooks = callbacks_module.CallbackList(callbacks, model=self, epochs=epochs, steps=steps, verbose=verbose)
        recorder = None
        if history:
            recorder = next((c for c in hooks if isinstance(c, callbacks_module.History)), None)
            if recorder is None:
                recorder = callbacks_module.History()
                hooks.append(recorder)
            self._raise_on_non_finite = not any(isinstance(c, callbacks_module.TerminateOnNaN) for c in hooks)
        if verbose:
            hooks.append(progress.ProgressLogger(verbose))
        return recorder, hooks

    def _split_validation(self, x, y, sample_weight, validation_split, validation_data):
        """Prepared training (x, y, weights) and validation (x, y, weights) or None; the split takes the
        LAST fraction, as Keras, sample weights included."""
        if not 0 <= validation_split < 1:
            raise ValueError(f"`validation_split` must be in [0, 1). Received: validation_split={validation_split!r}")
        x, y, weights = self._prepare(x, y, sample_weight)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("`validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, "
                                 f"val_sample_weight). Received: {type(validation_data).__name__}")
            return x, y, weights, self._prepare(*validation_data)
        if validation_split == 0:
            return x, y, weights, None
        split_at = int(math.floor(len(x) * (1.0 - validation_split)))
        if split_at in (0, len(x)):
            raise ValueError(f"validation_split={validation_split} of {len(x)} examples leaves an empty set")
        tail = None if weights is None else weights[split_at:]
        head = None if weights is None else weights[:split_at]
        return x[:split_at], y[:split_at], head, (x[split_at:], y[split_at:], tail)

    def _evaluate_prepared(self, x, y, weights, batch_size, steps=None, hooks=None):
        """{"loss": ..., metric: ...} over prepared (x, y), in inference mode, batches weighted by size."""
        fused = self._fused()
        hooks = hooks or callbacks_module.CallbackList()
        running = Running(self)
        hooks.on_test_begin()
        x, y, weights = self.distribution.local_share(x, y, weights)  # each process evaluates its share
        total = math.ceil(len(x) / batch_size) if steps is None else min(steps, math.ceil(len(x) / batch_size))
        for batch in range(total):
            rows = slice(batch * batch_size, (batch + 1) * batch_size)
            hooks.on_test_batch_begin(batch)
            y_pred = self._forward(x[rows], training=False)
            loss = float(self._loss(y[rows], y_pred, fused, None if weights is None else weights[rows])[0])
            running.add(loss, y[rows], y_pred)
            hooks.on_test_batch_end(batch, running.logs())
        running.reduce(self.distribution)
        logs = running.logs()
        hooks.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss and metrics on (x, y) without dropout: ``[loss, *metrics]``, just the loss without metrics,
        or with ``return_dict`` a dict ``{"accuracy": ..., "loss": ...}``. ``sample_weight`` weights the loss.

        ``verbose`` as in ``fit``: a progress bar (1), one line (2), "auto" (1 on a terminal, else 2), or 0.
        """
        self._check_compiled()
        batch_size = _check_positive_int(DEFAULT_BATCH_SIZE if batch_size is None else batch_size, "batch_size")
        steps = _check_positive_int(steps, "steps", allow_none=True)
        verbose = progress.resolve_verbose(verbose)
        x, y, weights = self._prepare(x, y, sample_weight)
        total = math.ceil(len(x) / batch_size) if steps is None else min(steps, math.ceil(len(x) / batch_size))
        _, hooks = self._callback_list(callbacks, verbose, epochs=1, steps=total)
        self.reset_metrics()
        logs = self._evaluate_prepared(x, y, weights, batch_size, steps, hooks)
        if return_dict:
            return dict(sorted(logs.items()))
        values = [logs[name] for name in self.metrics_names]
        return values if self._metrics else values[0]

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs of the last layer (e.g. class probabilities) for every example, without dropout.

        ``verbose`` as in ``evaluate``; ``steps`` predicts only the first ``steps`` batches.
        """
        batch_size = _check_positive_int(DEFAULT_BATCH_SIZE if batch_size is None else batch_size, "batch_size")
        steps = _check_positive_int(steps, "steps", allow_none=True)
        verbose = progress.resolve_verbose(verbose)
        x = self._check_inputs(x)
        total = math.ceil(len(x) / batch_size) if steps is None else min(steps, math.ceil(len(x) / batch_size))
        _, hooks = self._callback_list(callbacks, verbose, epochs=1, steps=total)
        hooks.on_predict_begin()
        outputs = []
        with engine.step():  # the batches are one unit of work for the engine (see engine.step)
            for batch in range(total):
                hooks.on_predict_batch_begin(batch)
                outputs.append(self._forward(x[batch * batch_size:(batch + 1) * batch_size], training=False))
                hooks.on_predict_batch_end(batch, {"outputs": outputs[-1]})
        hooks.on_predict_end()
        return np.concatenate(outputs)

    def predict_logits(self, x, batch_size=32):
        """The last layer's outputs BEFORE its activation (e.g. the logits under a softmax)."""
        batch_size = _check_positive_int(batch_size, "batch_size")
        x = self._check_inputs(x)
        outputs = []
        for start in range(0, len(x), batch_size):
            y = self._forward(x[start:start + batch_size], training=False)
            last = self.layers[-1]
            outputs.append(last.logits if isinstance(last, ActivatedLayer) and last.logits is not None else y)
        return np.concatenate(outputs)

    def __call__(self, x, training=False):
        """Forward pass of one batch (no loss): ``model(x)``, an array that also has Keras's ``.numpy()``."""
        if isinstance(x, Layer):
            raise NotImplementedError(FUNCTIONAL_API_MESSAGE)
        return Tensor(self._forward(self._check_inputs(x), training=training))

    # ------------------------------------------------------------------------------------------
    # Weights, summary, config, saving
    # ------------------------------------------------------------------------------------------

    def _check_built(self):
        if not self.built:
            raise ValueError(
                f"Model {self.name!r} is not built yet: give `input_shape`, call build(input_shape), or fit it."
            )

    def _weight_items(self):
        """(path, array, trainable) of every weight, in Keras order."""
        return [(f"{self.name}/{layer.name}/{key}", array, trainable)
                for layer in self.layers for key, array, trainable in layer_weights(layer)]

    @property
    def weights(self):
        """Every weight as a named live array (``w.name``, ``w.path``, ``w.numpy()``, ``w.assign(...)``)."""
        return [Weight(array, path.rsplit("/", 1)[1], path, trainable)
                for path, array, trainable in self._weight_items()]

    @property
    def trainable_weights(self):
        """The weights the optimizer updates (those of layers not frozen)."""
        return [w for w in self.weights if w.trainable]

    @property
    def non_trainable_weights(self):
        """The weights the optimizer leaves alone (frozen layers', and statistics layers keep themselves)."""
        return [w for w in self.weights if not w.trainable]

    def count_params(self):
        """Total number of scalar weights, trainable or not."""
        self._check_built()
        return sum(int(array.size) for _, array, _ in self._weight_items())

    def get_weights(self):
        """Copies of every weight array in Keras order: layer by layer, kernel then bias."""
        self._check_built()
        return [array.copy() for _, array, _ in self._weight_items()]

    def set_weights(self, weights):
        """Copy ``weights`` (the list ``get_weights`` returns) into the model, checking every shape."""
        self._check_built()
        weights = list(weights)
        items = self._weight_items()
        if len(weights) != len(items):
            raise ValueError(
                f"Model {self.name!r} expects {len(items)} weight arrays; received a list of {len(weights)}"
            )
        for (path, array, _), value in zip(items, weights):
            if np.shape(value) != array.shape:
                raise ValueError(f"Weight {path.split('/', 1)[1]} has shape {array.shape}; "
                                 f"received an array of shape {np.shape(value)}")
        for (_, array, _), value in zip(items, weights):
            array[...] = value  # in place: the optimizer's state stays attached to the same arrays

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
            size = sum(int(array.size) for _, array, _ in layer_weights(layer))
            lines.append(row(name, shape, f"{size:,}"))
            lines.append("=" * len(rule) if i == len(self.layers) - 1 else "")
        trainable = sum(int(array.size) for _, array, is_trainable in self._weight_items() if is_trainable)
        total = self.count_params()
        lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}"]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def get_config(self):
        """Everything needed to rebuild the (untrained) model: name, dtype, seed, input shape, layers."""
        return {
            "name": self.name, "dtype": self.dtype, "seed": self.seed,
            "input_shape": None if self._example_shape is None else list(self._example_shape),
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

    def save(self, filepath, overwrite=True):
        """Save the model: ``.keras`` writes a Keras 3 archive that Keras loads; any other name scratchnet's
        ``.npz`` (config, weights and optimizer state). See ``scratchnet.models.saving``."""
        from .saving import save_model

        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights only: ``.weights.h5`` in Keras's layout, or ``.npz``."""
        from .saving import save_weights

        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Load weights saved by ``save_weights`` (``.weights.h5`` / ``.npz``), or from a ``.keras`` archive."""
        from .saving import load_weights

        load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def __repr__(self):
        return f"<Sequential name={self.name!r} layers={len(self.layers)} dtype={self.dtype}>"
