"""Average pooling and the global poolings over NHWC batches (MaxPooling2D lives with Conv2D in conv.py)."""

from scratchnet import engine

from .base import Layer, register
from .conv import _Pooling2D


def check_data_format(data_format, layer):
    """Only channels-last (NHWC) data, as every scratchnet image layer; None means Keras's default, the same."""
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f'{layer} supports data_format="channels_last" (NHWC) only. Received: data_format={data_format!r}'
        )


@register
class AveragePooling2D(_Pooling2D):
    """Mean over ``pool_size`` windows moved by ``strides`` (default: ``pool_size``), NHWC.

    Notes: as TensorFlow, "same" padding leaves the padded cells out of each window's mean (a corner
    window may average fewer cells). Keras 3 requires ``pool_size``; the default 2 is Keras 2's.
    """

    OP = "avg_pool2d"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        check_data_format(data_format, "AveragePooling2D")
        super().__init__(pool_size, strides, padding, **kwargs)

    def backward(self, dy):
        return engine.avg_pool2d_backward(dy, self._use_up_cache())


class _GlobalPooling2D(Layer):
    """One value per channel from all of H and W: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims."""

    OP = None  # "global_avg_pool2d" or "global_max_pool2d"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)

    def build(self, input_shape, rng=None, dtype="float32"):
        self.output_shape(input_shape)  # validates the input shape
        super().build(input_shape, rng, dtype)

    def forward(self, x, training=False):
        y, self._cache = getattr(engine, self.OP + "_forward")(x)
        return y[:, None, None, :] if self.keepdims else y

    def backward(self, dy):
        if self.keepdims:
            dy = dy[:, 0, 0, :]
        return getattr(engine, self.OP + "_backward")(dy, self._use_up_cache())

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} expects examples of shape (height, width, channels) (NHWC batches). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        return (1, 1, input_shape[-1]) if self.keepdims else (input_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


@register
class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean of each channel over all positions (Keras's ``reduce_mean`` over H and W)."""

    OP = "global_avg_pool2d"


@register
class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum of each channel over all positions.

    Notes: as Keras (``reduce_max``), the gradient of a tie is split equally among the tied cells.
    """

    OP = "global_max_pool2d"
