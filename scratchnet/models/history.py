"""Hooks into ``fit``: the Callback base class, the History every ``fit`` returns, and LambdaCallback."""

__all__ = ["Callback", "History", "LambdaCallback"]


class Callback:
    """Base class of the objects ``fit(callbacks=[...])`` calls at the start/end of training, epochs and steps.

    ``logs`` is a dict: per step ``loss`` and the metrics as running means over the epoch so far, plus
    ``batch_loss`` (this step's loss) and ``step`` (steps since ``fit`` began); per epoch the epoch's
    ``loss``, metrics and ``val_*`` values. Setting ``self.model.stop_training = True`` ends ``fit`` after
    the current epoch.
    """

    def __init__(self):
        self.model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"][epoch]``, ``["val_accuracy"]``, ...

    Attributes:
        history: dict from a key (loss, accuracy, val_loss, val_accuracy, ...) to a list of floats.
        epoch: the epoch indices recorded (0-based).
        params: ``{"epochs", "steps", "batch_size", "verbose"}`` of the ``fit`` call.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []
        self.params = {}

    def on_train_begin(self, logs=None):
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"<History epochs={len(self.epoch)} keys={list(self.history)}>"


class LambdaCallback(Callback):
    """A callback made of plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, on_train_begin=None, on_epoch_begin=None, on_train_batch_end=None,
                 on_epoch_end=None, on_train_end=None):
        super().__init__()
        given = {"on_train_begin": on_train_begin, "on_epoch_begin": on_epoch_begin,
                 "on_train_batch_end": on_train_batch_end, "on_epoch_end": on_epoch_end,
                 "on_train_end": on_train_end}
        for hook, function in given.items():
            if function is not None:
                setattr(self, hook, function)
