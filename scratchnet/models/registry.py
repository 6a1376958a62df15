"""The model classes that files can name: a class registers itself, and the loaders look it up by name.

Keras's ``register_keras_serializable`` in miniature. It lets ``scratchnet.models.saving`` and
``scratchnet.models.keras_format`` rebuild a model from the ``class_name`` a file holds without importing
the model's module, so the model can use them for ``save`` without an import cycle.
"""

__all__ = ["MODEL_CLASSES", "register_model_class", "model_class"]

MODEL_CLASSES = {}
"""class_name -> the class whose from_config() rebuilds it; filled by register_model_class."""


def register_model_class(cls):
    """Class decorator: models of ``cls`` can be saved, and loaded back from files naming ``cls.__name__``."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def model_class(name):
    """The registered class called ``name``; a ValueError naming the known ones otherwise."""
    try:
        return MODEL_CLASSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"class_name {name!r} is none of {', '.join(sorted(MODEL_CLASSES))}") from None
