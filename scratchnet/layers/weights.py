"""A model's weights as Keras lists them (``model.weights``): live arrays that carry a name and a path."""

import numpy as np

__all__ = ["Weight", "Tensor", "layer_weights"]


class Weight(np.ndarray):
    """One weight array of a model, as a Keras variable: ``name`` ("kernel"), ``path``
    ("sequential/dense/kernel") and ``trainable``.

    It is a VIEW of the array the model trains: writing into it (``w[...] = 0`` or ``w.assign(values)``)
    changes the model. ``numpy()`` returns a plain copy; arithmetic on it gives plain arrays.
    """

    def __new__(cls, array, name, path, trainable):
        view = array.view(cls)
        view.name, view.path, view.trainable = name, path, trainable
        return view

    def __array_finalize__(self, obj):
        self.name = getattr(obj, "name", None)
        self.path = getattr(obj, "path", None)
        self.trainable = getattr(obj, "trainable", None)

    def __array_wrap__(self, array, context=None, return_scalar=False):
        array = array.view(np.ndarray)  # w + 1 is a new array, not a weight of the model
        return array[()] if return_scalar else array

    def numpy(self):
        """A plain NumPy copy of the values, as ``variable.numpy()``."""
        return np.array(self.view(np.ndarray), copy=True)

    def assign(self, value):
        """Overwrite the values in place (the shape must match), as ``variable.assign(value)``."""
        if np.shape(value) != self.shape:
            raise ValueError(f"Weight {self.path} has shape {self.shape}; received a value of shape {np.shape(value)}")
        self.view(np.ndarray)[...] = value
        return self

    def __repr__(self):
        return f"<Weight path={self.path} shape={self.shape} dtype={self.dtype}>"


class Tensor(np.ndarray):
    """What ``model(x)`` returns: a NumPy array that also answers a Keras tensor's ``numpy()``."""

    def __array_wrap__(self, array, context=None, return_scalar=False):
        array = array.view(np.ndarray)
        return array[()] if return_scalar else array

    def __new__(cls, array):
        return np.asarray(array).view(cls)

    def numpy(self):
        """The values as a plain NumPy array (a view: no copy is made)."""
        return self.view(np.ndarray)


def layer_weights(layer):
    """Every weight of a layer in Keras's order, as ``(name, array, trainable)``.

    First its ``params`` (trained unless the layer is frozen), then any ``non_trainable_params`` it keeps
    (statistics a layer updates itself, never through the optimizer).
    """
    items = [(key, array, layer.trainable) for key, array in layer.params.items()]
    items += [(key, array, False) for key, array in getattr(layer, "non_trainable_params", {}).items()]
    return items
