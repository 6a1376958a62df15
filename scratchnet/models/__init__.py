"""Models: Sequential (compile / fit / evaluate / predict / save), load_model, History and callbacks."""

from .history import Callback, History, LambdaCallback
from .saving import load_model, save_model
from .sequential import DivergenceError, Sequential  # registers Sequential, so load_model can rebuild it

__all__ = ["Sequential", "load_model", "save_model", "History", "Callback", "LambdaCallback", "DivergenceError"]
