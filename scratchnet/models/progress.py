"""What ``fit`` / ``evaluate`` / ``predict`` print, in Keras's format, on standard output (as Keras).

``verbose``: 0 prints nothing; 1 a progress bar per epoch (on a terminal it is redrawn in place, elsewhere
only its final state is printed); 2 one line per epoch; "auto" means 1 on a terminal and 2 otherwise.
With more than one epoch, ``fit`` first prints ``Epoch i/n``. A finished line reads, as Keras 3's::

    188/188 ━━━━━━━━━━━━━━━━━━━━ 3s 14ms/step - accuracy: 0.9080 - loss: 0.3155 - val_accuracy: ...

All printing of the models goes through this module.
"""

import math
import sys
import time

from scratchnet.callbacks import Callback

__all__ = ["resolve_verbose", "is_terminal", "epoch_line", "Progbar", "ProgressLogger"]

_HIDDEN = ("batch_loss", "step", "outputs")
"""Logs keys scratchnet adds for callbacks that Keras would not print."""


def is_terminal(stream=None):
    """Whether ``stream`` (default stdout) is a terminal, where a line can be redrawn in place."""
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def resolve_verbose(verbose, stream=None):
    """0, 1 or 2 from a ``verbose`` argument ("auto": 1 on a terminal, else 2); anything else raises."""
    if verbose == "auto":
        return 1 if is_terminal(stream) else 2
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1, 2 or 'auto'. Received: verbose={verbose!r}")
    return int(verbose)


def _number(value):
    value = float(value)
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def _per_step(seconds, unit):
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def epoch_line(epoch, epochs, seconds, steps, logs, unit="step"):
    """One finished epoch as Keras's ``verbose=2`` prints it, with the epoch in front, on a single line::

        Epoch 2/4 - 21s - 12ms/step - accuracy: 0.9851 - loss: 0.0489 - val_accuracy: 0.9880 - val_loss: ...

    A log file gets this line and nothing else per epoch: no bar, no carriage return.
    """
    shown = " - ".join(f"{key}: {_number(value)}" for key, value in logs.items() if key not in _HIDDEN)
    per_step = seconds / steps if steps else 0.0
    line = f"Epoch {epoch + 1}/{epochs} - {seconds:.0f}s - {_per_step(per_step, unit)}"
    return line + (f" - {shown}" if shown else "")


class Progbar:
    """One progress line of ``target`` steps, redrawn in place on a terminal.

    ``update(current, values)`` reports that ``current`` steps are done, with ``values`` a dict of the
    numbers to show; ``finish(values)`` prints the final line.
    """

    WIDTH = 20
    INTERVAL = 0.05  # seconds between redraws: a terminal redraw per step would cost more than a small step

    def __init__(self, target, verbose=1, stream=None, unit="step"):
        self.target, self.verbose, self.unit = target, verbose, unit
        self.stream = stream or sys.stdout
        self.dynamic = is_terminal(self.stream)
        self.start = time.perf_counter()
        self._after_first_step = None
        self._last_draw = 0.0
        self._drawn_width = 0

    def _seconds_per_step(self, current, now):
        if not current:
            return 0.0
        if current == 1 or self._after_first_step is None:
            if current == 1:
                self._after_first_step = now
            return (now - self.start) / current
        return (now - self._after_first_step) / (current - 1)  # the first step (warm-up) is left out

    def _line(self, current, values, now, final):
        per_step = self._seconds_per_step(current, now)
        shown = " - ".join(f"{key}: {_number(value)}" for key, value in values.items() if key not in _HIDDEN)
        digits = int(math.log10(max(self.target, 1))) + 1
        count = f"{current:>{digits}}/{self.target}"
        if self.verbose == 2:
            line = f"{count} - {now - self.start:.0f}s - {_per_step(per_step, self.unit)}"
        else:
            done = int(self.WIDTH * current / self.target) if self.target else self.WIDTH
            if self.dynamic:
                bar = f"\x1b[1m{count}\x1b[0m \x1b[32m{'━' * done}\x1b[0m\x1b[37m{'━' * (self.WIDTH - done)}\x1b[0m"
            else:
                bar = f"{count} {'━' * self.WIDTH}"
            seconds = now - self.start if final else per_step * (self.target - current)
            line = f"{bar} {_clock(seconds, final)} {_per_step(per_step, self.unit)}"
        return line + (f" - {shown}" if shown else "")

    def update(self, current, values=None):
        if self.verbose != 1 or not self.dynamic:
            return
        now = time.perf_counter()
        if current == 1:
            self._seconds_per_step(current, now)
        if now - self._last_draw < self.INTERVAL and current < self.target:
            return  # throttled, except the last step: what a callback prints at the epoch's end follows it
        self._draw("\r" + self._line(current, values or {}, now, final=False))
        self._last_draw = now

    def finish(self, values=None, current=None):
        if self.verbose == 0:
            return
        current = self.target if current is None else current
        line = self._line(current, values or {}, time.perf_counter(), final=True)
        self._draw(("\r" if self.dynamic and self.verbose == 1 else "") + line + "\n")

    def _draw(self, text):
        width = len(text.rstrip("\n"))
        if self.dynamic and width < self._drawn_width:
            text = text.rstrip("\n") + " " * (self._drawn_width - width) + ("\n" if text.endswith("\n") else "")
        self._drawn_width = 0 if text.endswith("\n") else width
        self.stream.write(text)
        self.stream.flush()


def _clock(seconds, final):
    """Keras's time field: elapsed seconds when done, else the remaining time as s, m:ss or h:mm:ss."""
    if final or seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"


class ProgressLogger(Callback):
    """The last callback of ``fit`` / ``evaluate`` / ``predict``: prints their progress (see the module)."""

    def __init__(self, verbose, stream=None):
        super().__init__()
        self.verbose, self.stream = verbose, stream
        self.bar, self._in_fit, self._steps = None, False, 0

    def _start(self):
        self.bar = Progbar(self.params["steps"], self.verbose, self.stream)
        self._steps = 0

    def _update(self, batch, logs):
        self._steps = batch + 1
        self.bar.update(self._steps, logs)

    def _finish(self, logs):
        if self.bar is not None:
            self.bar.finish(logs, current=max(self._steps, 1) if self._steps < self.params["steps"] else None)
            self.bar = None

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.params["epochs"] > 1:
            print(f"Epoch {epoch + 1}/{self.params['epochs']}", file=self.stream or sys.stdout, flush=True)
        self._start()

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._start()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._update(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._start()

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)

    def on_predict_end(self, logs=None):
        self._finish(None)
