"""Compile a CNN's float32 backward kernels (and the dense forward piece) in a second process while this one
compiles the forward.

numba compiles one function at a time in a process, so on a cold cache a convolutional model's warm-up
waits for its kernels one after the other, and the convolution's backward piece, the biggest of them,
comes last. A second process can compile it, and max-pooling's backward, into the same disk cache
meanwhile: numba writes each cache file whole (a temporary file, then a rename) and looks in the cache
before it compiles a function. By the time the warm-up reaches a backward it usually finds it there and
only loads it; if not, it compiles it itself. Either way it runs the same machine code: the helper can
only save time, and if it fails, or is stopped half-way (its unfinished work is then no longer needed),
nothing is lost.

Two processes may save the same function at once only with the same signature: a function's cache index
lists its signatures, and two processes adding different ones at the same moment could each write its own
index over the other's. Every function the helper compiles has one float32 signature, the one the warm-up
compiles (tests/test_warm_up.py: after the helper, a warm-up compiles none of its functions again).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = ["IDLE_CORES_NEEDED", "backward_in_background", "compile_backward"]


IDLE_CORES_NEEDED = 0.5
"""The helper starts only if, since the context began, the machine's cores were idle this much on average
(in cores; `_idle_cores`).

Trades the helper's head start against the cores it takes from the warm-up: one that has to share a core
with other busy processes slows the warm-up more than it helps it (figures: docs/performance.md). Retune
if the helper's share of the compile work changes."""


@contextlib.contextmanager
def backward_in_background():
    """A context in which the first compilation of a float32 convolution's forward piece (`_forward_piece` or
    `_panels_direct_piece`: a cold cache, a model that convolves in float32 on the thread team) starts a
    process that runs `compile_backward`.

    The process is stopped when the context ends, if it still runs (the work it would finish is then done).
    No process starts when the piece is already cached, with one thread, or when the cores were busy since
    the context began (IDLE_CORES_NEEDED).
    """
    from numba.core import event

    from scratchnet.kernels.conv_team import _forward_piece, _panels_direct_piece
    from scratchnet.runtime import threads

    helpers, since = [], _cpu_times()

    class Listener(event.Listener):
        def on_start(self, compile_event):
            if not helpers and compile_event.data["dispatcher"] in (_forward_piece, _panels_direct_piece):
                idle = threads.num_threads() > 1 and _idle_cores(since) >= IDLE_CORES_NEEDED
                helpers.append(_start() if idle else None)

        def on_end(self, compile_event):
            pass

    try:
        with event.install_listener("numba:compile", Listener()):
            yield
    finally:
        for helper in helpers:
            _stop(helper)


def _cpu_times():
    """(idle, total) time of all the machine's cores so far, in clock ticks (Linux's /proc/stat), with the
    number of cores; None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            lines = stat.read().splitlines()
        ticks = [int(value) for value in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        return None
    cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return ticks[3] + ticks[4], sum(ticks), cores


def _idle_cores(since):
    """How many cores were idle on average between the `_cpu_times()` reading `since` and now. Without
    /proc/stat, or over too short a time to tell (under 0.1 s of two cores' ticks), the load average
    stands in: the cores less the processes that wanted one over the last minute, less this one."""
    now = _cpu_times()
    if since is not None and now is not None and now[1] - since[1] >= 20:
        return (now[0] - since[0]) / (now[1] - since[1]) * now[2]
    try:
        return (os.cpu_count() or 1) - os.getloadavg()[0] - 1
    except (AttributeError, OSError):  # no load average either: no helper
        return 0.0


def _start():
    """``python -m scratchnet.kernels.precompile`` on this scratchnet, quietly, as a process of its own; None
    if it cannot start (the warm-up then compiles everything itself)."""
    if not sys.executable:  # an embedded interpreter: no python to start
        return None
    package_parent = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=package_parent if not path else package_parent + os.pathsep + path)
    try:
        return subprocess.Popen([sys.executable, "-m", "scratchnet.kernels.precompile"], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _stop(helper):
    """Stop the helper process if it still runs, and reap it."""
    if helper is None:
        return
    if helper.poll() is None:
        helper.kill()
    helper.wait()


def compile_backward():
    """Run a float32 dense product cut into parts, the float32 backward of a convolution on the thread team's
    path, then of a max-pooling, once each on small arrays: numba compiles (or loads) their pieces and
    loops, and saves them in the disk cache.
    No convolution without that path (no NumPy OpenBLAS sgemm, see `scratchnet.kernels.conv`).

    The order races the warm-up's: after the dense layers' forward piece (small, and needed only once the
    warm-up is past the convolutions' forward), the loops that only the convolution's backward uses come, called
    as its piece calls them, while the warm-up compiles those the forward shares (im2col, sgemm), which the
    piece then loads; the max-pooling's backward, which the warm-up reaches before the convolution's but
    which is quicker to compile, comes last.
    """
    from scratchnet.kernels import conv_team, dense, pooling
    from scratchnet.kernels.im2col import DX_SCATTER, _col2im_add, _col2im_gather, conv_geometry
    from scratchnet.runtime import blas

    if blas.sgemm() is not None:
        # first the dense layers' forward piece, which the warm-up reaches after every forward loop of the
        # convolutions and poolings (a product just big enough to be cut into parts)
        rows = max(1, -(-dense.DENSE_PARALLEL_MIN_MACS // 256 ** 2))
        dense.dense_forward(np.zeros((rows, 256), dtype=np.float32), np.zeros((256, 256), dtype=np.float32))
        x, kernel = np.zeros((1, 3, 3, 1), dtype=np.float32), np.zeros((2, 2, 1, 1), dtype=np.float32)
        geometry = conv_geometry(x.shape, kernel.shape, (1, 1), "valid")  # no padding: dx is (N, H, W*CI)
        dy = np.zeros((1, geometry.oh, geometry.ow, 1), dtype=np.float32)
        dx = np.zeros((1, 3, 3), dtype=np.float32)
        dcols = np.zeros((geometry.oh * geometry.ow, geometry.kh * geometry.kw), dtype=np.float32)
        _col2im_add(dcols, geometry.loop_sizes(), 0, 1, dx)
        _col2im_gather(dcols, geometry.loop_sizes(), 0, 1, dx)
        conv_team.backward(x, kernel, dy, geometry, DX_SCATTER, dx)
    argmax = np.zeros((1, 1, 1, 1), dtype=np.int32)  # a 2x2 window's maximum at its first pixel
    pooling.max_pool2d_backward(np.zeros((1, 1, 1, 1), dtype=np.float32), ((1, 2, 2, 1), np.dtype(np.float32), argmax))


if __name__ == "__main__":
    compile_backward()
