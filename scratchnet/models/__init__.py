"""Models: Sequential (compile / fit / evaluate / predict / save), load_model, and the callbacks fit takes."""

from scratchnet.callbacks import Callback, History, LambdaCallback

from .saving import load_model, save_model
from .sequential import DivergenceError, Model, Sequential

__all__ = ["Sequential", "Model", "load_model", "save_model", "History", "Callback", "LambdaCallback",
           "DivergenceError"]
