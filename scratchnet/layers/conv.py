"""The image layers: Conv2D and MaxPooling2D over NHWC batches, with TensorFlow's padding rules."""

from scratchnet import engine, initializers

from .base import ActivatedLayer, Layer, positive_int, register


def int_pair(value, name):
    """Turn an int or a pair of ints (Keras's kernel_size, strides, pool_size) into (rows, cols)."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            return positive_int(value[0], name), positive_int(value[1], name)
        except ValueError:
            pass
    elif not isinstance(value, (tuple, list)):
        try:
            value = positive_int(value, name)
            return value, value
        except ValueError:
            pass
    raise ValueError(f"`{name}` must be a positive int or a tuple of 2 positive ints. Received: {name}={value!r}")


def check_padding(padding):
    """Return "same" or "valid" (case-insensitive, as Keras), else raise a ValueError."""
    if isinstance(padding, str) and padding.lower() in ("same", "valid"):
        return padding.lower()
    raise ValueError(f'`padding` must be "same" or "valid". Received: padding={padding!r}')


def spatial_output_shape(input_shape, window, strides, padding, layer, channels=None):
    """(OH, OW, channels) for examples (H, W, C) swept by ``window``, TensorFlow's padding rules.

    ``channels`` None keeps the input's C (pooling); a convolution passes its filter count.
    """
    if len(input_shape) != 3:
        raise ValueError(
            f"{layer} expects examples of shape (height, width, channels) (NHWC batches). "
            f"Received: input_shape={tuple(input_shape)}"
        )
    try:
        (oh, _, _), (ow, _, _) = (engine.padding_amounts(size, k, s, padding)
                                  for size, k, s in zip(input_shape[:2], window, strides))
    except ValueError as error:
        raise ValueError(f"{layer}: {error}. Received: input_shape={tuple(input_shape)}") from None
    return oh, ow, input_shape[2] if channels is None else channels


@register
class Conv2D(ActivatedLayer):
    """2-D convolution: ``activation(conv2d(x, kernel) + bias)``, kernel (KH, KW, CI, filters).

    Notes: TensorFlow's conventions throughout: NHWC inputs, HWIO kernels, cross-correlation (no kernel
    flip), "same" padding with the odd extra row/column at the bottom/right; Keras's default init
    (glorot_uniform with the receptive field in both fans, zero bias).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(activation, **kwargs)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = int_pair(kernel_size, "kernel_size")
        self.strides = int_pair(strides, "strides")
        self.padding = check_padding(padding)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape, rng=None, dtype="float32"):
        self.output_shape(input_shape)  # validates the input shape
        super().build(input_shape, rng, dtype)
        shape = (*self.kernel_size, self.input_shape[-1], self.filters)
        self.params = {"kernel": self.kernel_initializer(shape, self.dtype, rng)}
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.filters,), self.dtype, rng)

    def forward(self, x, training=False):
        if self.use_bias and self.activation == "relu":  # the common case, as one op
            y, self._cache = engine.conv2d_bias_relu_forward(x, self.params["kernel"], self.params["bias"],
                                                             self.strides, self.padding)
            self.logits = None  # the op keeps the output, from which relu's gradient is read
            return y
        z, self._conv_cache = engine.conv2d_forward(x, self.params["kernel"], self.strides, self.padding)
        if self.use_bias:
            z, self._bias_cache = engine.bias_add_forward(z, self.params["bias"])
        return self._activate(z)

    def backward(self, dy, from_logits=False, need_dx=True):
        """Fill ``grads`` and return dx; ``need_dx=False`` (a model's first layer) skips dx, returning None.

        The forward's cache is used up here (a second backward needs a new forward), so the activations
        it holds can be freed while the gradients are computed.
        """
        if self.use_bias and self.activation == "relu" and from_logits:
            # dy is already the gradient of the pre-activation: only the bias and the convolution remain
            conv_cache, y = self._use_up_cache()
            dz, dbias = engine.bias_add_backward(dy, (y.shape, y.dtype))
            dx, dkernel = engine.conv2d_backward(dz, conv_cache, need_dx)
        elif self.use_bias and self.activation == "relu":
            dx, dkernel, dbias = engine.conv2d_bias_relu_backward(dy, self._use_up_cache(), need_dx)
        else:
            dz = self._activation_backward(dy, from_logits)
            if self.use_bias:
                dz, dbias = engine.bias_add_backward(dz, self._bias_cache)
            dx, dkernel = engine.conv2d_backward(dz, self._conv_cache, need_dx)
        self.grads = {"kernel": dkernel, "bias": dbias} if self.use_bias else {"kernel": dkernel}
        return dx

    def output_shape(self, input_shape):
        return spatial_output_shape(input_shape, self.kernel_size, self.strides, self.padding, "Conv2D",
                                    self.filters)

    def get_config(self):
        return {
            **super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
            "strides": list(self.strides), "padding": self.padding, "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }


class _Pooling2D(Layer):
    """A window pooling over NHWC batches: ``pool_size`` windows moved by ``strides`` (default: ``pool_size``);
    a subclass names its op (``OP``, e.g. "avg_pool2d") and its backward, or has a forward of its own."""

    OP = None

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else int_pair(strides, "strides")
        self.padding = check_padding(padding)

    def build(self, input_shape, rng=None, dtype="float32"):
        self.output_shape(input_shape)  # validates the input shape
        super().build(input_shape, rng, dtype)

    def forward(self, x, training=False):
        y, self._cache = getattr(engine, self.OP + "_forward")(x, self.pool_size, self.strides, self.padding)
        return y

    def output_shape(self, input_shape):
        return spatial_output_shape(input_shape, self.pool_size, self.strides, self.padding, type(self).__name__)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}


@register
class MaxPooling2D(_Pooling2D):
    """Max over ``pool_size`` windows moved by ``strides`` (default: ``pool_size``), NHWC.

    Notes: as TensorFlow, "same" padding cells are -inf (never chosen), and the gradient of a window goes
    to one maximum, the first in row-major order.
    """

    def forward(self, x, training=False):
        """In predict and evaluate (``training=False``) the op finds no argmax and keeps no cache: a backward
        needs a forward with ``training=True``."""
        y, self._cache = engine.max_pool2d_forward(x, self.pool_size, self.strides, self.padding, training=training)
        return y

    def backward(self, dy):
        return engine.max_pool2d_backward(dy, self._cache)

