"""Keras-named layers: thin stateful wrappers holding ``params``/``grads`` around the stateless ops."""

from .base import ACTIVATIONS, ActivatedLayer, Layer, deserialize, serialize
from .conv import Conv2D, MaxPooling2D
from .core import Activation, BiasAdd, Dense, Dropout, Flatten, Input, InputLayer, Reshape

MaxPool2D = MaxPooling2D  # Keras's alias

__all__ = [
    "Layer", "ActivatedLayer", "ACTIVATIONS", "Dense", "Conv2D", "MaxPooling2D", "MaxPool2D", "Flatten",
    "Dropout", "Activation", "BiasAdd", "Reshape", "InputLayer", "Input", "serialize", "deserialize",
]
