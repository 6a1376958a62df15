"""What ``fit`` and ``evaluate`` keep from batch to batch: the order of the batches and the running means."""

import math
import warnings

__all__ = ["Batches", "FitLoop", "Running", "should_validate"]


def should_validate(epoch, validation_freq):
    """Keras's rule: an int k validates after epochs k, 2k, ...; a collection lists the (1-based) epochs."""
    if isinstance(validation_freq, int) and not isinstance(validation_freq, bool):
        if validation_freq < 1:
            raise ValueError(f"`validation_freq` must be a positive integer. Received: {validation_freq!r}")
        return (epoch + 1) % validation_freq == 0
    return epoch + 1 in validation_freq


class FitLoop:
    """Where ``fit`` stands: the epoch, the next batch within it, the updates done so far, the epoch's running
    means (None between epochs), the batch order and the History. A checkpoint saves it; a resumed run sets
    it in ``on_train_begin`` and ``fit`` carries on from there. (A loop of steps outside ``fit``, such as
    ``python -m scratchnet.train``'s "steps" schedule, keeps its position in one too, to be checkpointed alike.)"""

    def __init__(self, batches, history, epoch, new_running):
        self.batches, self.history, self.epoch, self.new_running = batches, history, epoch, new_running
        self.batch, self.done, self.running = 0, 0, None


class Batches:
    """The batches of ``fit``: row indices of shuffled passes over n examples, a pass at a time.

    ``take(limit, carry_on)`` yields up to ``limit`` batches. With ``carry_on`` (``steps_per_epoch``) the
    next call continues the same pass and a pass that runs out ends the call early (with Keras's warning);
    otherwise every call starts a new pass.
    """

    def __init__(self, n, batch_size, shuffle, rng):
        self.n, self.batch_size, self.shuffle, self.rng = n, batch_size, shuffle, rng
        self.per_pass = math.ceil(n / batch_size)
        self.order, self.position = None, 0

    def _new_pass(self):
        self.order = self.rng.permutation(self.n) if self.shuffle else None
        self.position = 0

    def take(self, limit, carry_on):
        if limit < 1:
            return  # nothing to take (a run resumed at the end of an epoch): the order stays as it is
        if not carry_on or self.position in (0, self.per_pass):
            self._new_pass()
        for _ in range(limit):
            if self.position >= self.per_pass:
                warnings.warn("Your input ran out of data; the epoch ends early. Make sure that "
                              "`steps_per_epoch` is at most ceil(len(x) / batch_size) for a full epoch.",
                              stacklevel=3)
                return
            rows = slice(self.position * self.batch_size, (self.position + 1) * self.batch_size)
            self.position += 1
            yield rows if self.order is None else self.order[rows]


class Running:
    """Running means over one pass (an epoch, an evaluation): the loss, each batch weighted by its size, and
    the metrics, summed over examples (a metric object keeps its own state)."""

    def __init__(self, model):
        self.names, self.metrics = model.metric_names, model._metrics
        self.loss_sum, self.seen = 0.0, 0
        self.sums = [0.0] * len(self.metrics)
        for metric in self.metrics:
            if hasattr(metric, "reset_state"):
                metric.reset_state()

    def add(self, loss, y, y_pred):
        self.loss_sum += loss * len(y_pred)
        self.seen += len(y_pred)
        for i, metric in enumerate(self.metrics):
            if hasattr(metric, "update_state"):
                metric.update_state(y, y_pred)
            else:
                self.sums[i] += float(metric(y, y_pred).sum())

    def reduce(self, distribution):
        """With several processes (`scratchnet.distributed`), make the sums those of every process's rows:
        the loss, the counts, the function metrics' sums and the mean-type metric objects' totals. (A metric
        object of another kind, such as AUC, keeps this process's share.)"""
        means = [m for m in self.metrics if hasattr(m, "total") and hasattr(m, "count")]
        values = [self.loss_sum, self.seen, *self.sums, *(v for m in means for v in (m.total, m.count))]
        self.loss_sum, self.seen, *rest = distribution.reduce_sums(values)
        self.sums, rest = list(rest[:len(self.sums)]), rest[len(self.sums):]
        for metric, (total, count) in zip(means, zip(rest[0::2], rest[1::2])):
            metric.total, metric.count = total, count

    def logs(self):
        logs = {"loss": self.loss_sum / max(self.seen, 1)}
        for name, metric, total in zip(self.names, self.metrics, self.sums):
            logs[name] = float(metric.result()) if hasattr(metric, "result") else total / max(self.seen, 1)
        return logs
