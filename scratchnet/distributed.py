"""Data-parallel training on MPI processes (mpirun, mpiexec, Slurm's srun) through mpi4py.

Every process holds the whole model and trains on its rows of each global batch; one Allreduce per step gives
every process the one-process update of the global batch::

    mpirun -n 4 python -m scratchnet.train --model emnist_cnn      # or: srun --mpi=pmix python -m ...

From Python, one call before ``fit`` (in one process, or without mpi4py, it changes nothing)::

    model = zoo.build("kaggle_cnn", seed=0)
    distribution = distributed.data_parallel(model)    # rank 0's weights and random state everywhere
    model.fit(x, y, batch_size=32, epochs=10)          # each process trains on its rows of every batch
    if distribution.is_chief:
        model.save("kaggle_cnn.npz")

Why a step equals the one-process step (docs/distributed.md has the measurements):

* every process runs the same code on the same data from the same random state (rank 0's, broadcast once), so
  all of them shuffle alike and see the same global batches;
* of a global batch of N rows, process r of P takes the contiguous rows [N*r//P, N*(r+1)//P) (slices may
  differ by one row);
* a dropout layer's mask is the one a single process would draw for the whole global batch, from the same
  generator state on every process; each process keeps its rows of it;
* the losses are means over a batch, so process r's gradient is weighted by n_r / N before the sum, which is
  then the mean over the global batch; the weighted gradients and loss travel in ONE flat buffer, summed in
  place by one Allreduce, and every process applies the same update;
* epoch metrics and validation are sums over examples, added up over the processes before dividing.

Only rank 0 prints, saves, checkpoints and plots: the train CLI asks ``is_chief``. A checkpoint
(``scratchnet.checkpoint``) is written by rank 0 and read by every process: the weights, optimizer state and
generators are the same on all of them, and rank 0 collects the one thing that is not, each process's running
means of the epoch so far. ``SingleProcess`` is every model's default distribution: its hooks leave a step
exactly as it is.
"""

import concurrent.futures
import contextlib
import math
import os
import sys
import time

import numpy as np

from scratchnet import layers as layers_module

__all__ = ["SingleProcess", "DataParallel", "LaunchError", "world", "data_parallel", "abort", "task_pool",
           "split", "keep_mask_rows"]

LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS")
"""Set in a process started by an MPI launcher: Open MPI's mpirun, PMIx (Open MPI 5, ``srun --mpi=pmix``),
PMI (MPICH's and Intel's mpiexec, ``srun --mpi=pmi2``). Without one of them mpi4py is never imported."""


class LaunchError(RuntimeError):
    """This process was started as one of several, but cannot join them (the message says how to fix it)."""


def split(n, parts, index):
    """Rows [first, stop) of part ``index`` when n rows are cut into ``parts`` contiguous pieces.

    Pieces differ by at most one row, and the larger ones come last: 32 rows in 3 parts are 10, 11, 11.
    """
    return n * index // parts, n * (index + 1) // parts


def keep_mask_rows(rng, shape, rate, first, stop):
    """Rows [first, stop) of the dropout keep-mask ``rng.random(shape) >= rate``, without drawing the others.

    ``rng`` ends where drawing the whole mask leaves it, so every process's generator stays in step. The rows
    before and after are skipped with ``advance`` (PCG64, numpy's default, makes one 64-bit draw per float64
    uniform, and advances any distance in O(log distance)); other generators draw them and throw them away.
    """
    per_row = math.prod(shape[1:])
    _skip_uniforms(rng, first * per_row)
    mask = rng.random((stop - first, *shape[1:])) >= rate
    _skip_uniforms(rng, (shape[0] - stop) * per_row)
    return mask


def _skip_uniforms(rng, count):
    generator = rng.bit_generator
    # A buffered 32-bit half would be dropped by advance but kept by drawing: then draw.
    if isinstance(generator, (np.random.PCG64, np.random.PCG64DXSM)) and not generator.state["has_uint32"]:
        generator.advance(count)
        return
    for start in range(0, count, 1 << 20):
        rng.random(min(1 << 20, count - start))


class SingleProcess:
    """One process: the default distribution of every model. Each hook leaves the step as it is."""

    rank, size, is_chief = 0, 1, True

    def local_rows(self, rows, n):
        """The rows of the global batch ``rows`` (a slice or index array into n examples) this process trains on."""
        return rows

    def local_batch(self, *arrays):
        """This process's rows of a global training batch (arrays of equal length)."""
        return arrays

    def local_share(self, *arrays):
        """This process's share of a data set it evaluates (validation, test)."""
        return arrays

    def reduce_gradients(self, grads, loss):
        """Make ``grads`` (in place) and the returned loss those of the global batch."""
        return loss

    def reduce_sums(self, values):
        """Add up ``values`` (a list of numbers: sums over examples, counts) over the processes."""
        return list(values)

    def reduce_max(self, value):
        """The largest of ``value`` (an integer, e.g. a flag) over the processes, the same on every process."""
        return value

    def gather(self, value):
        """Every process's ``value`` (a small picklable object) on rank 0, as a list in rank order; None elsewhere."""
        return [value]

    def broadcast(self, value):
        """Rank 0's ``value`` (a small picklable object) on every process."""
        return value

    def __repr__(self):
        return "<SingleProcess>"


SINGLE_PROCESS = SingleProcess()


class DataParallel(SingleProcess):
    """``model`` trained by every process of ``comm`` (an mpi4py intracommunicator), each on its rows.

    Made by ``data_parallel(model)``, which also sets it as ``model.distribution``. Creating it is collective:
    every process of ``comm`` must create it, after building the same model. ``allreduce_seconds`` and
    ``steps`` add up the time spent in (and waiting at) the per-step Allreduce, for measurements.
    """

    def __init__(self, model, comm):
        from mpi4py import MPI

        self._in_place, self._max = MPI.IN_PLACE, MPI.MAX
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.is_chief = self.rank == 0
        self.model = model
        self._share = None  # this process's rows / the global batch's rows, for the current step
        self._buffer = None  # the flat gradient buffer, made on the first step and reused
        self.allreduce_seconds, self.steps = 0.0, 0
        self._check_same_model(model)
        self._broadcast_state(model)

    def _check_same_model(self, model):
        """Every process must hold the same architecture; all raise together (none is left waiting) if not."""
        if not model.built:
            raise ValueError("data_parallel needs a built model: give `input_shape` or call model.build() first")
        shapes = [tuple(w.shape) for w in model.get_weights()]
        fixed = [layer.name for layer in model.layers if isinstance(layer, layers_module.Dropout)
                 and layer.mask is not None]
        differs = shapes != self.comm.bcast(shapes, root=0)
        if self.comm.allreduce(differs or bool(fixed), op=self._max):
            if fixed:
                raise ValueError(f"Dropout layers {fixed} have a fixed `mask`; data-parallel training draws each "
                                 "step's masks for the global batch: set their mask to None")
            raise ValueError("data_parallel: the processes hold different models (weight shapes differ from rank "
                             "0's); build the same model on every process")

    def _broadcast_state(self, model):
        """Rank 0's weights, random generators (shuffling, dropout) and optimizer state on every process."""
        weights = model.get_weights()
        for weight in weights:
            self.comm.Bcast(weight, root=0)
        model.set_weights(weights)
        for generator in _generators(model):
            generator.bit_generator.state = self.comm.bcast(generator.bit_generator.state, root=0)
        optimizer = model.optimizer
        if optimizer is not None:
            iterations = self.comm.bcast(optimizer.iterations, root=0)
            state = self.comm.bcast(optimizer.get_state() if self.is_chief else None, root=0)
            if iterations or state:
                optimizer.set_state(state, weights, iterations)

    # -- the hooks Sequential calls ------------------------------------------------------------------------

    def local_rows(self, rows, n):
        """This process's contiguous part of the global batch ``rows`` (a slice or index array into n examples).

        Also draws the step's dropout masks: each dropout layer's mask for the whole global batch, this
        process's rows of it (``reduce_gradients`` clears them once the step's backward has used them).
        """
        if isinstance(rows, slice):
            rows = range(n)[rows]  # a range: slicing it again stays a range
        total = len(rows)
        if total < self.size:
            raise ValueError(f"A batch of {total} examples cannot be split over {self.size} processes: each needs "
                             "at least one. Use a batch size (and a last batch) of at least one per process.")
        first, stop = split(total, self.size, self.rank)
        self._share = (stop - first) / total
        for layer in self.model.layers:
            if isinstance(layer, layers_module.Dropout) and layer.rate > 0:
                layer.mask = keep_mask_rows(layer.rng, (total, *layer.input_shape), layer.rate, first, stop)
        local = rows[first:stop]
        return slice(local.start, local.stop, local.step) if isinstance(local, range) else local

    def local_batch(self, *arrays):
        rows = self.local_rows(slice(None), len(arrays[0]))
        return tuple(array[rows] for array in arrays)

    def local_share(self, *arrays):
        first, stop = split(len(arrays[0]), self.size, self.rank)  # a share may be empty: nothing is trained
        return tuple(None if array is None else array[first:stop] for array in arrays)

    def reduce_gradients(self, grads, loss):
        """Weight this process's gradients and loss by its share of the global batch and sum them over the
        processes with ONE in-place Allreduce of a flat buffer; ``grads`` (in place) and the returned loss
        are then the global batch's, the same on every process."""
        dtype = np.dtype(self.model.dtype)
        size = sum(grad.size for grad in grads) + 1
        if self._buffer is None or self._buffer.size != size or self._buffer.dtype != dtype:
            self._buffer = np.empty(size, dtype)
        views, offset = [], 0
        for grad in grads:
            views.append(self._buffer[offset:offset + grad.size].reshape(grad.shape))
            offset += grad.size
        share = dtype.type(self._share)
        for grad, view in zip(grads, views):
            np.multiply(grad, share, out=view)
        self._buffer[-1] = loss * share
        start = time.perf_counter()
        self.comm.Allreduce(self._in_place, self._buffer)
        self.allreduce_seconds += time.perf_counter() - start
        self.steps += 1
        for grad, view in zip(grads, views):
            grad[...] = view
        for layer in self.model.layers:
            if isinstance(layer, layers_module.Dropout):
                layer.mask = None  # this step's masks are in the backward caches; the next step draws new ones
        return float(self._buffer[-1])

    def reduce_sums(self, values):
        totals = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self._in_place, totals)
        return totals.tolist()

    def reduce_max(self, value):
        largest = np.array([value], dtype=np.int64)
        self.comm.Allreduce(self._in_place, largest, op=self._max)
        return int(largest[0])

    def gather(self, value):
        return self.comm.gather(value, root=0)

    def broadcast(self, value):
        return self.comm.bcast(value, root=0)

    def __repr__(self):
        return f"<DataParallel rank={self.rank} size={self.size}>"


def _generators(model):
    """Every numpy Generator the model and its layers hold (shuffling order, dropout masks), in a fixed order."""
    for owner in (model, *model.layers):
        for value in vars(owner).values():
            if isinstance(value, np.random.Generator):
                yield value


# -------------------------------------------------------------------------------------------------------------
# Finding the other processes
# -------------------------------------------------------------------------------------------------------------

_world = None


def world():
    """The communicator of the processes this one was started with: ``MPI.COMM_WORLD`` when an MPI launcher
    started several, else None (mpi4py is then not even imported).

    On the first call that finds several processes it also makes an uncaught exception in any of them end them
    all (``sys.excepthook`` prints it, then calls ``Abort``: the others may be waiting for this one in a
    collective and would wait forever), and, unless SCRATCHNET_NUM_THREADS is set, gives each process its
    share of the cores its node's processes share. Raises ``LaunchError`` when this process is one of several
    but cannot join them (mpi4py missing, srun without MPI).
    """
    global _world
    if _world is None:
        comm = _discover()
        if comm is None:
            return None
        _abort_on_uncaught_exception(comm)
        _share_the_cores(comm)
        _world = comm
    return _world


def _discover():
    """COMM_WORLD when an MPI launcher started several processes, None for one process."""
    if not any(name in os.environ for name in LAUNCHER_VARIABLES):
        task = os.environ.get("SLURM_PROCID", "0")
        if task != "0":
            raise LaunchError(f"this is task {task} of an srun step started without MPI, so every task would train "
                              "alone: launch with `srun --mpi=pmix` (or pmi2, as your cluster's MPI wants)")
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        size = os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ.get("PMI_SIZE") or "several"
        if size == "1":
            return None
        raise LaunchError(f"started by an MPI launcher as one of {size} processes, but mpi4py is not installed: "
                          "pip install 'scratchnet[mpi]' (or run without mpirun)") from None
    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def _abort_on_uncaught_exception(comm):
    previous = sys.excepthook

    def print_and_abort(kind, value, traceback):
        previous(kind, value, traceback)
        abort(comm, 1)

    sys.excepthook = print_and_abort


def _share_the_cores(comm):
    """Threads per process: the cores this process may use, at most the node's cores / its processes.

    The runtime reads SCRATCHNET_NUM_THREADS when it first configures itself (at the first op). Without this,
    every process would start a thread per core and P processes would spin P threads on each core.
    """
    if os.environ.get("SCRATCHNET_NUM_THREADS"):
        return
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    on_this_node = node.Get_size()
    node.Free()
    mine = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["SCRATCHNET_NUM_THREADS"] = str(max(1, min(mine, (os.cpu_count() or 1) // on_this_node)))


def data_parallel(model, comm=None):
    """Make ``model`` train data-parallel over ``comm`` (default: ``world()``) and return its distribution.

    With several processes this is collective: rank 0's weights, random state and optimizer state are
    broadcast, and ``model.distribution`` becomes a ``DataParallel``, whose hooks ``fit``, ``train_step`` and
    ``evaluate`` call. With one process (or no communicator) the model keeps the no-op ``SingleProcess``.
    """
    comm = world() if comm is None else comm
    if comm is None or comm.Get_size() == 1:
        model.distribution = SINGLE_PROCESS
    else:
        model.distribution = DataParallel(model, comm)
    return model.distribution


ABORT_GRACE_SECONDS = 0.5
"""How long a failing process waits, its message written, before it aborts the others: Abort kills the job at
once, and a message still in mpirun's output forwarding would be lost. Trades a moment at exit for the
message; lengthen it if messages go missing on a slow cluster file system."""


def abort(comm, code):
    """End the run with exit code ``code``: one of several processes aborts them all (the others may be waiting
    for it in a collective and would wait forever); alone (``comm`` None or of size 1) it returns ``code``."""
    if comm is None or comm.Get_size() == 1:
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_SECONDS)  # mpirun forwards a process's output asynchronously: let the message out first
    comm.Abort(code)
    return code  # not reached: Abort ends the process


# -------------------------------------------------------------------------------------------------------------
# Independent runs spread over the processes (the reproduction sweep)
# -------------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def task_pool(comm=None):
    """An executor for independent tasks (``submit(function, *args)`` -> a future), or None.

    With several processes rank 0 gets an ``mpi4py.futures`` executor whose workers are the other ranks: each
    runs one task at a time and takes the next as soon as it is free, so runs of very different lengths
    balance themselves. The other ranks serve tasks inside ``with`` and get None once rank 0 is done.
    Alone, the executor runs each task in this process when its result is first asked for.
    """
    if comm is None or comm.Get_size() == 1:
        yield _InProcess()
        return
    from mpi4py.futures import MPICommExecutor

    with MPICommExecutor(comm, root=0) as executor:
        yield executor


class _InProcess:
    def submit(self, function, *args):
        return _Deferred(function, args)


class _Deferred:
    """A future whose task runs in this process the first time its result is asked for (never if cancelled)."""

    def __init__(self, function, args):
        self._function, self._args = function, args
        self._done, self._cancelled, self._value = False, False, None

    def result(self):
        if self._cancelled:
            raise concurrent.futures.CancelledError()
        if not self._done:
            self._value, self._done = self._function(*self._args), True
        return self._value

    def cancel(self):
        self._cancelled = not self._done
        return self._cancelled
