"""Keras-named layers: thin stateful wrappers holding ``params``/``grads`` around the stateless ops."""

from .activation import LeakyReLU, ReLU, Softmax
from .base import ACTIVATIONS, ActivatedLayer, Layer, deserialize, serialize
from .conv import Conv2D, MaxPooling2D
from .core import Activation, BiasAdd, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .normalization import BatchNormalization
from .pooling import AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D

MaxPool2D = MaxPooling2D  # Keras's aliases
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = [
    "Layer", "ActivatedLayer", "ACTIVATIONS", "Dense", "Conv2D", "MaxPooling2D", "MaxPool2D", "Flatten",
    "Dropout", "Activation", "BiasAdd", "Reshape", "InputLayer", "Input", "serialize", "deserialize",
    "BatchNormalization", "AveragePooling2D", "AvgPool2D", "GlobalAveragePooling2D", "GlobalAvgPool2D",
    "GlobalMaxPooling2D", "GlobalMaxPool2D", "Softmax", "ReLU", "LeakyReLU",
]
