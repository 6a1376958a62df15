"""Fast ReLU and bias addition: one-pass numba loops with the same API (and caches) as scratchnet.ops.

``np.where(x > 0, dy, 0)`` (ReLU's backward) makes a data-dependent choice per element and runs far
slower than one pass over memory, and the bias gradient's ``copy`` plus column ``sum`` makes two passes
where one does (figures: docs/performance.md). ``bias_add_relu`` (a Conv2D's bias and relu as one op)
saves the backward one more pass. Big arrays are cut into one slice per thread (PARALLEL_MIN_SIZE), but the
bias gradients, which sum over rows, into `scratchnet.runtime.threads.PARTS` slices whatever the thread
count, added in order: the same sums at any thread count. Caches are the reference's, so a forward from
one engine and a backward from the other still fit together.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.kernels._common import SUPPORTED_DTYPES
from scratchnet.ops import activations as reference_activations
from scratchnet.ops import conv as reference_conv
from scratchnet.ops._checks import check_dy, float_array
from scratchnet.runtime import team, threads

__all__ = ["relu_forward", "relu_backward", "sigmoid_forward", "softmax_forward", "bias_add_forward",
           "bias_add_backward", "bias_add_relu_forward", "bias_add_relu_backward", "bias_add_relu_backward_over",
           "bias_add_relu_over"]

PARALLEL_MIN_SIZE = 1_000_000
"""Arrays with at least this many values are cut into slices (one per thread, PARTS for the bias gradients'
sums) and run by the worker threads of `scratchnet.runtime.threads`, because one core does not saturate
memory bandwidth.

Trades `parallel_map`'s hand-over against the pass it shares. Retune if the hand-over gets cheaper or
the machine's bandwidth per core changes."""


TEAM_MIN_SIZE = 200_000
"""relu's and the bias addition's forward passes over at least this many values run on the thread team
(`threads.run_pieces`), one slice of rows per thread (`_relu_piece`, `_bias_piece`); smaller ones in one call.

One core does not saturate memory, and the team hands a slice over in microseconds where `parallel_map`
takes tens (2026-12-03, in one process): on notmnist_cnn's (100, 14, 14, 16) activations of a batch of 100,
bias 57 -> 42 us and relu 48 -> 40; on (50, 28, 28, 32), which took `parallel_map` from PARALLEL_MIN_SIZE,
153 -> 100 and 131 -> 92; on (100, 7, 7, 16) the team lost (relu 12 -> 15). Retune with the hand-over's cost."""


BIAS_BLOCK = 64
"""The forward bias kernels loop over runs of at least this many values, with the bias repeated to match:
a loop per row over a conv's 8 or 16 channels is too short for LLVM to vectorise.

Trades a slightly bigger repeated bias for loops long enough to vectorise. Retune with the CPU's
vector width (a run should span several vector moves)."""


def _bias_block(bias):
    """The bias repeated to a run of whole rows of at least BIAS_BLOCK values (see BIAS_BLOCK)."""
    return np.concatenate((bias,) * max(1, -(-BIAS_BLOCK // bias.shape[0])))  # np.tile's Python costs 4 us more


def _spans(rows, row_size=1):
    """(start, stop) spans of range(rows): one per thread when rows * row_size values are many, else one.
    For elementwise work only, whose values do not depend on the cut."""
    return threads.spans(rows, threads.num_threads() if rows * row_size >= PARALLEL_MIN_SIZE else 1)


def _sum_spans(rows, row_size):
    """(start, stop) spans of range(rows) for a sum over rows: PARTS spans when rows * row_size values are
    many, else one; never cut by the thread count, so the partial sums are the same at any thread count."""
    return threads.part_spans(rows, rows * row_size >= PARALLEL_MIN_SIZE)


def _each_span(function, spans):
    """function(span) for every span (any sequence), on the worker threads when there is more than one."""
    if len(spans) == 1:
        return [function(spans[0])]
    return threads.parallel_map(function, spans)


def relu_forward(x):
    """Rectified linear unit ``y = max(x, 0)``: x (any shape) -> y (x's shape and dtype), cache x."""
    x = float_array(x, "x")
    if x.dtype not in SUPPORTED_DTYPES:
        return reference_activations.relu_forward(x)
    source = np.ascontiguousarray(x)
    y = np.empty_like(source)
    flat_x, flat_y = source.reshape(-1), y.reshape(-1)
    if x.size < TEAM_MIN_SIZE:
        _relu_forward(flat_x, flat_y)
    else:
        threads.run_pieces([(_relu_piece, (flat_x, flat_y, span))
                            for span in threads.spans(x.size, threads.num_threads())])
    return y, x


def sigmoid_forward(x):
    """Logistic sigmoid ``y = 1 / (1 + exp(-x))``, stable at any magnitude: x (any shape) -> y (x's shape and
    dtype), cache y, as `scratchnet.ops.activations.sigmoid_forward` (whose NumPy takes five passes and as
    many temporary arrays: at a batch of predictions, more time than the matrix product before it)."""
    x = float_array(x, "x")
    if x.dtype not in SUPPORTED_DTYPES:
        return reference_activations.sigmoid_forward(x)
    source = np.ascontiguousarray(x)
    y = np.empty_like(source)
    _sigmoid(source.reshape(-1), y.reshape(-1))
    return y, y


def softmax_forward(x):
    """Softmax over the last axis, the row maximum subtracted first: x (..., C) -> y (x's shape and dtype), cache
    y, as `scratchnet.ops.activations.softmax_forward`, in one pass per row instead of five NumPy passes."""
    x = float_array(x, "x")
    if x.dtype not in SUPPORTED_DTYPES or x.ndim == 0 or x.size == 0:
        return reference_activations.softmax_forward(x)
    source = np.ascontiguousarray(x)
    y = np.empty_like(source)
    _softmax_rows(source.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1]))
    return y, y


def relu_backward(dy, cache):
    """``dx = dy`` where ``x > 0``, else 0 (0 at exactly x == 0, as TensorFlow); a new array.

    Notes: a NaN in x gives 0 (``NaN > 0`` is false), as in the reference.
    """
    x = cache
    if x.dtype not in SUPPORTED_DTYPES:
        return reference_activations.relu_backward(dy, cache)
    dy = np.ascontiguousarray(check_dy(dy, x.shape, x.dtype, "relu_backward"))
    x = np.ascontiguousarray(x)
    dx = np.empty_like(x)
    flat_dy, flat_x, flat_dx = dy.reshape(-1), x.reshape(-1), dx.reshape(-1)
    _each_span(lambda s: _relu_backward(flat_dy[s[0]:s[1]], flat_x[s[0]:s[1]], flat_dx[s[0]:s[1]]),
               _spans(x.size))
    return dx


def _channel_rows(x, bias, in_place=False):
    """``(x, bias, rows)`` for the bias kernels: x as a float array, bias in x's dtype, and x viewed as rows
    of C channels (N, C); or None where the reference must run instead (a dtype numba cannot do, a scalar,
    an empty x, a bias of the wrong length, whose error the reference raises, or with ``in_place`` an x that
    is not a writable C-contiguous array)."""
    x = float_array(x, "x")
    if x.dtype not in SUPPORTED_DTYPES or x.ndim < 1:
        return None
    if in_place and not (x.flags.c_contiguous and x.flags.writeable):
        return None
    bias = float_array(bias, "bias", ndim=1).astype(x.dtype, copy=False)
    if x.shape[-1] != bias.shape[0] or x.size == 0:  # an empty x has no rows to loop over
        return None
    return x, bias, np.ascontiguousarray(x).reshape(-1, x.shape[-1])


SMALL_BIAS_ADD_SIZE = 16_384
"""Bias additions over fewer values than this are NumPy's broadcast (the reference), not the loop.

Trades the loop's speed on a short channel axis against its fixed cost (the repeated bias, the spans,
the kernel call: about 10 microseconds), which only pays off on bigger arrays; one image of a small CNN
(a predict or serve call) stays below it. The values are the same either way (one addition each). Retune
if that fixed cost changes."""


def bias_add_forward(x, bias):
    """``y[..., c] = x[..., c] + bias[c]``: x (..., C), bias (C,) -> y (x's shape and dtype), cache.

    The reference's values (one addition each) from a loop that beats NumPy's broadcast over a short
    channel axis several times over, on the worker threads for big arrays; small arrays
    (SMALL_BIAS_ADD_SIZE) take the reference itself.
    """
    prepared = None if np.size(x) < SMALL_BIAS_ADD_SIZE else _channel_rows(x, bias)
    if prepared is None:
        return reference_conv.bias_add_forward(x, bias)
    x, bias, rows = prepared
    y = np.empty(x.shape, dtype=x.dtype)
    flat_x, flat_y, block = rows.reshape(-1), y.reshape(-1), _bias_block(bias)
    count, channels = rows.shape
    spans = threads.spans(count, threads.num_threads() if x.size >= TEAM_MIN_SIZE else 1)  # whole rows each
    threads.run_pieces([(_bias_piece, (flat_x, block, flat_y, (start * channels, stop * channels)))
                        for start, stop in spans])
    return y, (x.shape, x.dtype)


def bias_add_backward(dy, cache):
    """Gradients of a bias addition in one pass: ``dx = dy`` (a copy), ``dbias[c] = sum of dy[..., c]``.

    dy: (..., C) -> (dx (..., C), dbias (C,)), x's dtype. Rows are summed in order, as NumPy's
    ``sum(axis=0)`` does, so dbias matches the reference; a big array is summed in PARTS slices of rows
    (`_sum_spans`) whose sums are then added in order (the reference's order up to that one regrouping).
    """
    x_shape, dtype = cache
    if dtype not in SUPPORTED_DTYPES or 0 in x_shape:
        return reference_conv.bias_add_backward(dy, cache)
    dy = np.ascontiguousarray(check_dy(dy, x_shape, dtype, "bias_add_backward"))
    channels = x_shape[-1]
    dx = np.empty_like(dy)
    rows, dx_rows = dy.reshape(-1, channels), dx.reshape(-1, channels)
    spans = _sum_spans(*rows.shape)
    partial_sums = np.zeros((len(spans), channels), dtype=dtype)  # one row per span, added in order

    def copy_and_sum(part):
        start, stop = spans[part]
        _copy_and_sum_rows(rows[start:stop], dx_rows[start:stop], partial_sums[part])

    _each_span(copy_and_sum, range(len(spans)))
    dbias = partial_sums[0] if len(spans) == 1 else partial_sums.sum(axis=0, dtype=dtype)
    return dx, dbias


def bias_add_relu_forward(x, bias):
    """``y = relu(x + bias)``: x (..., C), bias (C,) -> y, cache z = x + bias; both written in one pass.

    A Conv2D layer's bias and relu. Forward, one pass is on par with the two ops (writing z and y
    dominates); the gain is the backward's. Same values as the reference.
    """
    prepared = _channel_rows(x, bias)
    if prepared is None:
        return reference_conv.bias_add_relu_forward(x, bias)
    x, bias, rows = prepared
    z, y = np.empty(x.shape, dtype=x.dtype), np.empty(x.shape, dtype=x.dtype)
    z_rows, y_rows, block = z.reshape(rows.shape), y.reshape(rows.shape), _bias_block(bias)
    _each_span(lambda s: _add_bias_relu(rows[s[0]:s[1]].reshape(-1), block, z_rows[s[0]:s[1]].reshape(-1),
                                        y_rows[s[0]:s[1]].reshape(-1)),
               _spans(*rows.shape))
    return y, z


def bias_add_relu_over(x, bias):
    """``x[...] = relu(x + bias)`` in one pass over x itself; returns x.

    For a fresh array that a kernel made and nobody else has seen (`conv2d_bias_relu_forward`'s
    convolution output): no second activation-sized array is written. The loop is `bias_add_relu_forward`'s
    with one array for input and output (three arguments that might overlap would make LLVM check at
    run time, find that they do, and take its scalar path).
    """
    prepared = _channel_rows(x, bias, in_place=True)
    if prepared is None:
        y, _ = reference_conv.bias_add_relu_forward(x, bias)
        x[...] = y
        return x
    x, bias, rows = prepared
    block = _bias_block(bias)
    _each_span(lambda s: _add_bias_relu_inplace(rows[s[0]:s[1]].reshape(-1), block), _spans(*rows.shape))
    return x


def bias_add_relu_backward(dy, cache):
    """Gradients of ``relu(x + bias)`` in one pass: ``dx = dy`` where ``z > 0`` else 0, dbias its column sums.

    dy: (..., C) -> (dx (..., C), dbias (C,)), z's dtype; big arrays are summed by slices of rows, as in
    `bias_add_backward` (`_sum_spans`). One pass instead of relu_backward's and bias_add_backward's two.
    """
    z = cache
    if z.dtype not in SUPPORTED_DTYPES or z.ndim < 1 or z.size == 0:
        return reference_conv.bias_add_relu_backward(dy, z)
    return _bias_add_relu_backward_into(dy, z, np.empty(z.shape, dtype=z.dtype))


def bias_add_relu_backward_over(dy, y):
    """`bias_add_relu_backward` with its cache ``y`` (relu's output) overwritten by dx where it can be (a
    C-contiguous float32 or float64 y; otherwise dx is a new array); returns (dx, dbias).

    For a caller that holds the only reference to ``y`` and has no further use for it
    (`scratchnet.kernels.conv_bias_relu`): the gradient needs no array of its own, so a training step's
    peak holds one activation less. Each value of y is read before dx is written over it.
    """
    if y.dtype not in SUPPORTED_DTYPES or y.ndim < 1 or y.size == 0 or not y.flags.c_contiguous:
        return bias_add_relu_backward(dy, y)
    return _bias_add_relu_backward_into(dy, y, y)


_NEW_ARRAY, _OVER_Z, _OVER_DY = 0, 1, 2
"""Where `_relu_backward_and_sum_rows` writes dx: an array of its own, over z (relu's output), over dy."""


def bias_add_relu_backward_into_dy(dy, y):
    """`bias_add_relu_backward` with dx written over ``dy`` (a C-contiguous array of y's shape and dtype, which
    the caller may overwrite: `scratchnet.kernels.conv_bias_relu`); returns (dx, dbias), dx being dy. Each
    value of dy is read before dx is written over it."""
    checked = check_dy(dy, y.shape, y.dtype, "bias_add_relu_backward")
    if checked is not dy or not dy.flags.c_contiguous:
        raise ValueError("bias_add_relu_backward_into_dy: dy must be a C-contiguous array of y's shape and dtype")
    return _bias_add_relu_backward_into(dy, y, dy)


def _bias_add_relu_backward_into(dy, z, dx):
    """dx (z's shape, contiguous; z itself, dy itself or an array of its own) = dy where z > 0 else 0; returns
    (dx, dbias)."""
    into = _OVER_Z if dx is z else _OVER_DY if dx is dy else _NEW_ARRAY
    dy = np.ascontiguousarray(check_dy(dy, z.shape, z.dtype, "bias_add_relu_backward"))
    channels = z.shape[-1]
    rows, dx_rows = dy.reshape(-1, channels), dx.reshape(-1, channels)
    z_rows = np.ascontiguousarray(z).reshape(-1, channels)
    spans = _sum_spans(*rows.shape)
    partial_sums = np.zeros((len(spans), channels), dtype=z.dtype)  # one row per span, added in order

    def relu_and_sum(part):
        start, stop = spans[part]
        _relu_backward_and_sum_rows(rows[start:stop], z_rows[start:stop], dx_rows[start:stop], partial_sums[part],
                                    into)

    _each_span(relu_and_sum, range(len(spans)))
    dbias = partial_sums[0] if len(spans) == 1 else partial_sums.sum(axis=0, dtype=z.dtype)
    return dx, dbias


@njit(cache=True, nogil=True)
def _add_bias_relu(x, bias_block, z, y):
    """z = x + bias and y = max(z, 0) (a NaN stays NaN), over flat arrays of whole rows of C channels.

    bias_block is the bias repeated (`_bias_block`): the loop runs over slices of its length, which LLVM
    vectorises (the slices are indexed from 0, so it needs no check for negative indices).
    """
    size = bias_block.size
    for start in range(0, x.size, size):
        stop = min(start + size, x.size)
        x_run, z_run, y_run = x[start:stop], z[start:stop], y[start:stop]
        for j in range(stop - start):
            value = x_run[j] + bias_block[j]
            z_run[j] = value
            y_run[j] = 0.0 if value < 0 else value


@njit(cache=True, nogil=True)
def _add_bias_relu_inplace(x, bias_block):
    """x = max(x + bias, 0) over a flat array of whole rows, as `_add_bias_relu` with z and y both x."""
    size = bias_block.size
    for start in range(0, x.size, size):
        run = x[start:min(start + size, x.size)]
        for j in range(run.size):
            value = run[j] + bias_block[j]
            run[j] = 0.0 if value < 0 else value


@njit(cache=True, nogil=True)
def _relu_backward_and_sum_rows(dy2d, z2d, dx2d, dbias, into):
    """dx2d[row, c] = dy2d[row, c] if z2d[row, c] > 0 else 0; dbias (C,) += the column sums of dx2d.

    Two short loops per row and a local accumulator (which aliases nothing) let LLVM vectorise both,
    which one loop doing both into dbias does not. `into` says where dx2d is: _OVER_Z (z2d itself) and
    _OVER_DY (dy2d itself) have loops that name that one array alone: with two names for one array LLVM's
    run-time overlap check would find the overlap and take its scalar loop. One function for the three
    cases, so a run compiles the same whichever case it meets first.
    """
    sums = np.zeros(dy2d.shape[1], dtype=dbias.dtype)
    if into == _OVER_DY:
        for row in range(dy2d.shape[0]):
            for c in range(dy2d.shape[1]):
                dy2d[row, c] = dy2d[row, c] if z2d[row, c] > 0 else 0.0
            for c in range(dy2d.shape[1]):
                sums[c] += dy2d[row, c]
    elif into == _OVER_Z:
        for row in range(dy2d.shape[0]):
            for c in range(dy2d.shape[1]):
                z2d[row, c] = dy2d[row, c] if z2d[row, c] > 0 else 0.0
            for c in range(dy2d.shape[1]):
                sums[c] += z2d[row, c]
    else:
        for row in range(dy2d.shape[0]):
            for c in range(dy2d.shape[1]):
                dx2d[row, c] = dy2d[row, c] if z2d[row, c] > 0 else 0.0
            for c in range(dy2d.shape[1]):
                sums[c] += dx2d[row, c]
    for c in range(dy2d.shape[1]):
        dbias[c] += sums[c]


@njit(cache=True, nogil=True)
def _sigmoid(x, y):
    """y[i] = sigmoid(x[i]) over flat arrays, exp only ever of -|x| <= 0 (no overflow): 1 / (1 + e) for
    x >= 0, e / (1 + e) below, as the reference; a NaN stays NaN."""
    one = y.dtype.type(1)
    for i in range(x.size):
        value = x[i]
        e = np.exp(-abs(value))
        y[i] = one / (one + e) if value >= 0 else e / (one + e)


@njit(cache=True, nogil=True)
def _softmax_rows(x2d, y2d):
    """y2d[r] = exp(x2d[r] - max(x2d[r])) / its sum, row by row (a row holding a NaN becomes NaN, as NumPy's)."""
    for r in range(x2d.shape[0]):
        row, out = x2d[r], y2d[r]
        largest = row[0]  # the row's maximum, NaN if it holds one; a loop here, where row.max() is a call that
        for c in range(1, row.size):  # costs more than the row (10 values) at a batch of predictions
            value = row[c]
            if value > largest or value != value:
                largest = value
        total = y2d.dtype.type(0)
        for c in range(row.size):
            e = np.exp(row[c] - largest)
            out[c] = e
            total += e
        for c in range(row.size):
            out[c] = out[c] / total


@njit(cache=True, nogil=True)
def _relu_forward(x, y):
    """y[i] = max(x[i], 0) over flat arrays; a NaN stays NaN, as with np.maximum."""
    for i in range(x.size):
        value = x[i]
        y[i] = 0.0 if value < 0 else value


@njit(cache=True, nogil=True)
def _relu_backward(dy, x, dx):
    """dx[i] = dy[i] if x[i] > 0 else 0, over flat arrays."""
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > 0 else 0.0


@njit(cache=True, nogil=True)
def _relu_piece(x, y, span, state, post_slot, done_slot, job):
    """y[span] = relu(x[span]) over flat arrays (`_relu_forward`). A piece of `scratchnet.runtime.team`."""
    team.post_done(state, post_slot, job)
    _relu_forward(x[span[0] : span[1]], y[span[0] : span[1]])
    team.mark_done(state, post_slot, done_slot, job)


@njit(cache=True, nogil=True)
def _bias_piece(x, bias_block, y, span, state, post_slot, done_slot, job):
    """y[span] = x[span] + bias over flat arrays, span a run of whole rows (`_add_bias`). A piece of
    `scratchnet.runtime.team`."""
    team.post_done(state, post_slot, job)
    _add_bias(x[span[0] : span[1]], bias_block, y[span[0] : span[1]])
    team.mark_done(state, post_slot, done_slot, job)


@njit(cache=True, nogil=True)
def _add_bias(x, bias_block, y):
    """y = x + bias over flat arrays of whole rows, by runs of the repeated bias as `_add_bias_relu`."""
    size = bias_block.size
    for start in range(0, x.size, size):
        stop = min(start + size, x.size)
        x_run, y_run = x[start:stop], y[start:stop]
        for j in range(stop - start):
            y_run[j] = x_run[j] + bias_block[j]


@njit(cache=True, nogil=True)
def _copy_and_sum_rows(dy2d, dx2d, dbias):
    """dx2d = dy2d (rows, C) and dbias (C,) += the sum of its rows, in one pass."""
    for row in range(dy2d.shape[0]):
        for c in range(dy2d.shape[1]):
            value = dy2d[row, c]
            dx2d[row, c] = value
            dbias[c] += value
