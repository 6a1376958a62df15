"""Programs the distributed tests start, alone or under ``mpirun``: ``python tests/distributed_programs.py MODE OUT``.

fit       train mlp and kaggle_cnn in float64 and float32 for 30 steps of fit on real MNIST digits, data-parallel
          over the processes (one process: the reference); rank 0 writes the weights and histories to OUT (.npz)
          with every rank's weight digest, to show the replicas stay identical.
steps     30 float32 train_steps of mlp and kaggle_cnn, each from the one-process run's weights and optimizer
          state before that step: alone it writes that trajectory to OUT; under mpirun it reads it from
          OUT + ".reference.npz" and rank 0 writes the weights after each step to OUT.
raise     rank 1 raises after a first Allreduce while rank 0 waits in a second one.
kill      rank 1 kills itself (SIGKILL) while rank 0 waits in an Allreduce.
cli-error rank 1's data loading fails inside the train CLI while rank 0 goes on into training.
threads   every rank prints the thread count ``distributed.world()`` gave it.
"""

import hashlib
import json
import os
import signal
import sys
import time

import numpy as np

from scratchnet import distributed, train, zoo
from scratchnet.datasets import mnist

STEPS = 30
EXAMPLES = 500  # kaggle_cnn's batches of 32: 15 full ones and one of 20 per epoch, so slices are uneven


def digits():
    (x, y), _ = mnist.load_data()
    return (x[:EXAMPLES + 200].astype(np.float64) / 255).reshape(-1, 28, 28, 1), y[:EXAMPLES + 200]


def fit(out):
    comm = distributed.world()
    x, y = digits()
    results = {}
    for name, batch_size in (("mlp", 100), ("kaggle_cnn", 32)):
        for dtype in ("float64", "float32"):
            model = zoo.build(name, seed=0, dtype=dtype)
            distribution = distributed.data_parallel(model, comm)
            images = x.astype(dtype)
            history = model.fit(images[:EXAMPLES], y[:EXAMPLES], batch_size=batch_size, epochs=100, steps=STEPS,
                                verbose=0, seed=1, validation_data=(images[EXAMPLES:], y[EXAMPLES:]))
            evaluation = model.evaluate(images[EXAMPLES:], y[EXAMPLES:], batch_size=64)
            weights = model.get_weights()
            digest = hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()
            digests = [digest] if comm is None else comm.gather(digest, root=0)
            if distribution.is_chief:
                key = f"{name}_{dtype}"
                results.update({f"{key}/{i}": w for i, w in enumerate(weights)})
                results[f"{key}/history"] = np.array(json.dumps(history.history))
                results[f"{key}/evaluation"] = np.array(evaluation)
                results[f"{key}/digests"] = np.array(digests)
    if comm is None or comm.Get_rank() == 0:
        np.savez(out, **results)


def steps(out):
    """Each step from the same state: float32 rounding differs between any two ways of summing a batch's
    gradient, and a ReLU or max-pooling choice that such a difference flips sends a free-running float32 run on
    another path (the one-process float32 run departs from its own float64 twin the same way). Starting every
    step from the reference's state measures each update, dropout masks and uneven slices included."""
    comm = distributed.world()
    x, y = digits()
    x = x.astype(np.float32)
    reference = None if comm is None else np.load(out + ".reference.npz")
    results = {}
    for name, batch_size in (("mlp", 100), ("kaggle_cnn", 32)):
        model = zoo.build(name, seed=0, dtype="float32")
        distribution = distributed.data_parallel(model, comm)
        order = np.random.default_rng(1).permutation(EXAMPLES)
        for step in range(STEPS):
            size = batch_size if step % 8 else 20  # now and then a short batch, as an epoch's last one
            rows = order[(step * batch_size) % (EXAMPLES - batch_size):][:size]
            key = f"{name}/{step}"
            if reference is None:
                results.update({f"{key}/before/{i}": w for i, w in enumerate(model.get_weights())})
                results.update({f"{key}/state/{i}": s for i, s in enumerate(model.optimizer.get_state())})
            else:
                weights = [reference[f"{key}/before/{i}"] for i in range(len(model.get_weights()))]
                model.set_weights(weights)
                state = [reference[f"{key}/state/{i}"] for i in range(sum(f"{key}/state/" in k for k in reference))]
                if state:
                    model.optimizer.set_state(state, weights, step)
            model.train_step(x[rows], y[rows])
            if distribution.is_chief:
                results.update({f"{key}/after/{i}": w for i, w in enumerate(model.get_weights())})
    if comm is None or comm.Get_rank() == 0:
        np.savez(out, **results)


def raise_on_rank_1(out):
    comm = distributed.world()
    buffer = np.ones(4)
    comm.Allreduce(distributed_in_place(), buffer)
    if comm.Get_rank() == 1:
        raise RuntimeError("rank 1 failed on purpose")
    comm.Allreduce(distributed_in_place(), buffer)  # rank 0 waits here for rank 1, which never comes
    time.sleep(600)


def kill_rank_1(out):
    comm = distributed.world()
    if comm.Get_rank() == 1:
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    comm.Allreduce(distributed_in_place(), np.ones(4))
    time.sleep(600)


def cli_error_on_rank_1(out):
    comm = distributed.world()
    if comm.Get_rank() == 1:
        def fail(recipe, data_dir=None):
            raise train.datasets.DataError("rank 1 cannot read its data")
        train.load_data = fail
    sys.exit(train.main(["--model", "mlp", "--steps", "1000", "--no-save", "--quiet"]))


def threads(out):
    distributed.world()
    print(os.environ["SCRATCHNET_NUM_THREADS"], flush=True)


def distributed_in_place():
    from mpi4py import MPI

    return MPI.IN_PLACE


if __name__ == "__main__":
    modes = {"fit": fit, "steps": steps, "raise": raise_on_rank_1, "kill": kill_rank_1,
             "cli-error": cli_error_on_rank_1, "threads": threads}
    modes[sys.argv[1]](sys.argv[2])
