"""Direct convolutions for 8, 16, 32 or 64 output channels: windows read straight from the padded images.

The column-matrix path (`scratchnet.kernels.im2col` + sgemm) spends most of a 16-channel convolution
outside the arithmetic: a product with 16 columns is too thin for BLAS, which copies (packs) the whole
column matrix once more before multiplying it, after im2col copied the windows out in the first place.
The same holds for a 32-channel convolution whose windows are short (a first layer's 5x5x1: 25 values), and
more for an 8-channel one. Here each output pixel's values are summed in registers while the window is read
where it lies:

    y[n, oh, ow, c] = sum over (kh, kw, ci) of x_padded[n, oh*SH + kh, (ow*SW + kw)*CI + ci] * kernel[kh, kw, ci, c]

For one (pixel, kh) the window's values are one contiguous run of KW*CI values of x_padded's row
oh*SH + kh, as for `_im2col`; the loops read them through a table of where each window value lies
(`_window_positions`). A few pixels go together: for each window value, one row of kernel values is
loaded and multiplied into pixels x channels running sums, which stay in CPU registers for the whole
window, written out once at the end: 8 x 8 (eight AVX registers, `_direct8`), 4 x 16 (eight,
`_direct16`) or 3 x 32 (twelve, `_direct32`). The loop order is the textbook sum's; only the grouping of
pixels is the machine's.

`_direct32` also serves 64 output channels, as two runs of 32 (each reading the window again, from L1).

The loops read the kernel as panels of 8, 16 or 32 columns (`kernel_panels`), one row of a panel after the
other, each loaded as whole AVX registers. Where the rows lie matters: rows that start off a 64-byte cache
line make loads that straddle two lines, so the panels start on one (NumPy aligns its arrays to 16 bytes
only).

`scratchnet.kernels.conv_team` calls these loops for the chunks of a forward convolution they can do
(`usable`), `_direct16` for the transposed dx of one with 16 input channels (a forward convolution of dy),
and `_dkernel16`, the same sums turned around (window values x channels of dkernel, over the pixels), for
the kernel gradient of a 16-channel convolution (`dkernel_usable`).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, config, njit, types
from numba.extending import intrinsic

__all__ = ["ALIGNMENT_BYTES", "CHANNELS", "DKERNEL_MAX_WINDOW", "DKERNEL_VALUES", "DOUBLE_WIDE_CHANNELS",
           "NARROW_CHANNELS", "NARROW_PIXELS", "PIXELS", "WIDE_CHANNELS", "WIDE_MAX_WINDOW", "WIDE_PIXELS",
           "dkernel_usable", "kernel_panels", "usable"]

CHANNELS = 16
"""The output channels of `_direct16`: one row of the kernel is two AVX registers of float32."""

PIXELS = 4
"""Output pixels `_direct16` sums together: PIXELS x CHANNELS running sums (eight AVX registers), each kernel
row loaded once for all of them. More would outgrow the 16 AVX registers; fewer load the kernel more often."""

NARROW_CHANNELS = 8
"""The output channels of `_direct8`: one row of the kernel is one AVX register."""

NARROW_PIXELS = 8
"""Output pixels `_direct8` sums together: 8 x 8 running sums (eight AVX registers), each kernel row loaded once
for all of them. One thread, kaggle_cnn's first convolution (5x5x1 -> 8, 100 images, 2026-12-03): 53 GFLOP/s
with 8 pixels, 51-52 with 10 or 12, against 21 for columns and sgemm (a product 8 columns wide); with 4 or 6
pixels LLVM's code ran at 4."""

WIDE_CHANNELS = 32
"""The output channels of `_direct32`: one row of the kernel is four AVX registers."""

WIDE_PIXELS = 3
"""Output pixels `_direct32` sums together: 3 x 32 running sums are twelve AVX registers, and the kernel row
takes the other four. Measured on deep_mnist's first convolution (one thread): 55 GFLOP/s with 3 pixels,
51 with 2, 40 with 4 (whose sums no longer fit in registers)."""

WIDE_MAX_WINDOW = 64
"""`_direct32` serves 32 output channels over windows of at most this many values (KH*KW*CI). The first
convolutions of deep_mnist and emnist_cnn (5x5x1 -> 32) run at 55-64 GFLOP/s a thread here, against 40 for
columns and sgemm, whose product grows more efficient with the window (the sum of its product).

Trades the direct loop's fixed speed against sgemm's, which grows with the window. Retune with the CPU's
registers and sgemm's efficiency on thin products."""

DOUBLE_WIDE_CHANNELS = 2 * WIDE_CHANNELS
"""64 output channels run `_direct32` (two runs of 32) over any window: one thread, 100 images, the 3x3x32
-> 64 conv of emnist_cnn at 91-92 GFLOP/s against 76-79 for columns and sgemm, the 5x5x32 -> 64 of
deep_mnist at 91-95 against 76-78 (alternating, kernel 64-byte aligned; 66-71 when it is not)."""

DKERNEL_VALUES = 5
"""Window values `_dkernel16` sums together: 5 x 16 running sums of dkernel (ten AVX registers), each row of dy
loaded once for all five."""

DKERNEL_MAX_WINDOW = 400
"""The longest window `_dkernel16` serves (5x5x16, measured): it reads a part's x and dy once per DKERNEL_VALUES
window values, which over longer windows would rely on ever more passes staying in cache. Retune with a
measurement of longer windows."""

ALIGNMENT_BYTES = 64
"""Where `kernel_panels` puts the kernel's first row: a cache line. Panel rows of 16 or 32 float32 are then
whole cache lines or halves of one, and no AVX load straddles two. 16-byte aligned (NumPy's own
alignment), the 64-channel loop ran at 66-71 GFLOP/s instead of 91-95; 32-byte aligned, at 68-71."""


def usable(geometry, channels_out, wide=True):
    """True if the direct loop can compute this convolution: 16 output channels (`channels_out`, the
    geometry's CO, or CI for a transposed dx) and at least PIXELS output pixels per image, or with `wide`
    also 8 channels over at least NARROW_PIXELS pixels, 32 over a window of at most WIDE_MAX_WINDOW values
    or 64 over any. (The transposed dx of the zoo's convs has none of the others, and its piece does not
    compile their loops: `scratchnet.kernels.conv_team` asks without `wide`.)"""
    pixels = geometry.oh * geometry.ow
    if channels_out == NARROW_CHANNELS:
        return wide and pixels >= NARROW_PIXELS
    if pixels < PIXELS:
        return False
    window = geometry.kh * geometry.kw * geometry.ci
    if channels_out == CHANNELS:
        return True
    short_window = channels_out == WIDE_CHANNELS and window <= WIDE_MAX_WINDOW
    return wide and (channels_out == DOUBLE_WIDE_CHANNELS or short_window)


def dkernel_usable(geometry):
    """True if `_dkernel16` computes this convolution's kernel gradient: 16 output channels over a window of
    DKERNEL_VALUES to DKERNEL_MAX_WINDOW values. One thread, notmnist_cnn's first conv (5x5x1): 77-84
    GFLOP/s against 25-29 for columns and sgemm, whose product (25 x pixels) @ (pixels x 16) is too thin for
    BLAS. The backward of its second conv (5x5x16, dx included), two threads, alternating: 0.80 ms against
    1.01 at a batch of 16, 5.05 against 5.95 at 100 (one thread: the same, 1.55 ms); of kaggle_cnn's
    (5x5x8, VALID, batch 32) 0.40 against 0.48."""
    window = geometry.kh * geometry.kw * geometry.ci
    return geometry.co == CHANNELS and DKERNEL_VALUES <= window <= DKERNEL_MAX_WINDOW


def kernel_panels(kernel2d, width):
    """kernel2d (K, CO) as CO // width panels of `width` columns, (CO // width, K, width), C-contiguous and
    starting on an ALIGNMENT_BYTES boundary: a view of kernel2d when it is one panel already so placed, else
    a copy (a kernel is at most a few hundred kB, copied in microseconds).

    A loop over one panel reads its rows one after the other, each `width` values long; with 64 channels in
    one row, `_direct32` would have to slice half a row for every window value, and LLVM then checks the
    slice's bounds in the innermost loop (about 70 GFLOP/s a thread instead of 90)."""
    k, channels = kernel2d.shape
    panels = channels // width
    if panels == 1 and kernel2d.flags.c_contiguous and kernel2d.ctypes.data % ALIGNMENT_BYTES == 0:
        return kernel2d.reshape(1, k, width)
    spare = ALIGNMENT_BYTES // kernel2d.itemsize
    buffer = np.empty(kernel2d.size + spare, dtype=kernel2d.dtype)
    start = (-buffer.ctypes.data % ALIGNMENT_BYTES) // kernel2d.itemsize
    result = buffer[start : start + kernel2d.size].reshape(panels, k, width)
    result[...] = kernel2d.reshape(k, panels, width).transpose(1, 0, 2)
    return result


def _stack_floats(count):
    """An intrinsic that returns a pointer to `count` float32 on the stack of the calling function (LLVM's
    ``alloca``).

    An array made with np.empty lives on the heap, which LLVM must assume other pointers can reach, so
    it would load and store every running sum at every step; an ``alloca`` it can keep in registers."""

    @intrinsic
    def stack_floats(typingctx):
        def codegen(context, builder, signature, args):
            with builder.goto_entry_block():  # allocated once per call, not once per loop round
                sums = builder.alloca(ir.ArrayType(ir.FloatType(), count))
            return builder.bitcast(sums, ir.PointerType(ir.FloatType()))

        return types.CPointer(types.float32)(), codegen

    return stack_floats


_stack_narrow_sums = _stack_floats(NARROW_PIXELS * NARROW_CHANNELS)
_stack_dkernel_sums = _stack_floats(DKERNEL_VALUES * CHANNELS)
_stack_sums = _stack_floats(PIXELS * CHANNELS)
_stack_wide_sums = _stack_floats(WIDE_PIXELS * WIDE_CHANNELS)

if config.DISABLE_JIT:  # plain Python has no stack to allocate on: an array does the same job, slowly

    def _running_narrow_sums():
        """The NARROW_PIXELS x NARROW_CHANNELS running sums (float32)."""
        return np.empty((NARROW_PIXELS, NARROW_CHANNELS), dtype=np.float32)

    def _running_dkernel_sums():
        """The DKERNEL_VALUES x CHANNELS running sums of dkernel (float32)."""
        return np.empty((DKERNEL_VALUES, CHANNELS), dtype=np.float32)

    def _running_sums():
        """The PIXELS x CHANNELS running sums (float32)."""
        return np.empty((PIXELS, CHANNELS), dtype=np.float32)

    def _running_wide_sums():
        """The WIDE_PIXELS x WIDE_CHANNELS running sums (float32)."""
        return np.empty((WIDE_PIXELS, WIDE_CHANNELS), dtype=np.float32)

else:

    @njit(cache=True, nogil=True, inline="always")
    def _running_narrow_sums():
        """The NARROW_PIXELS x NARROW_CHANNELS running sums (float32), on the stack (`_stack_narrow_sums`)."""
        return carray(_stack_narrow_sums(), (NARROW_PIXELS, NARROW_CHANNELS))

    @njit(cache=True, nogil=True, inline="always")
    def _running_dkernel_sums():
        """The DKERNEL_VALUES x CHANNELS running sums of dkernel (float32), on the stack."""
        return carray(_stack_dkernel_sums(), (DKERNEL_VALUES, CHANNELS))

    @njit(cache=True, nogil=True, inline="always")
    def _running_sums():
        """The PIXELS x CHANNELS running sums (float32), on the stack (`_stack_sums`)."""
        return carray(_stack_sums(), (PIXELS, CHANNELS))

    @njit(cache=True, nogil=True, inline="always")
    def _running_wide_sums():
        """The WIDE_PIXELS x WIDE_CHANNELS running sums (float32), on the stack (`_stack_wide_sums`)."""
        return carray(_stack_wide_sums(), (WIDE_PIXELS, WIDE_CHANNELS))


@njit(cache=True, nogil=True)
def _window_positions(sizes, row_length, wanted):
    """(starts, offsets) of the windows in a flat padded image (N, HP, WP*CI)[n], unsigned (np.uintp), for
    the direct loops (two empty arrays unless `wanted`):

    * starts[p]: where output pixel p's window starts, pixels row-major: (oh, ow) at
      ``oh*SH*row_length + ow*SW*CI``;
    * offsets[j]: where the window's value j is, from its start, in the kernel's row order (kh, kw, ci):
      ``kh*row_length + kw*CI + ci``.

    Window value j of pixel p is ``image[starts[p] + offsets[j]]``. Built once per call, by additions; both
    unsigned, so that numba adds no negative-index fix-up to the loads. Against slicing one run of KW*CI
    values per kernel row (KH slices per group of pixels) and two divisions by OW per pixel, the 16-channel
    loop went from 45 to 56 GFLOP/s a thread on a 5x5 window over one image channel, and stayed at 87-88
    over 16 channels (alternating A/B). A caller builds them once for all its calls of the loops."""
    ci, kh_size, kw_size, sh, sw, oh_size, ow_size, _, _ = sizes
    if not wanted:
        return np.empty(0, dtype=np.uintp), np.empty(0, dtype=np.uintp)
    starts = np.empty(oh_size * ow_size, dtype=np.uintp)
    for oh in range(oh_size):
        for ow in range(ow_size):
            starts[oh * ow_size + ow] = oh * sh * row_length + ow * sw * ci
    run = kw_size * ci
    offsets = np.empty(kh_size * run, dtype=np.uintp)
    for kh in range(kh_size):
        for j in range(run):
            offsets[kh * run + j] = kh * row_length + j
    return starts, offsets


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _direct16(x_padded, kernel2d, y2d, positions, n0, n1):
    """y2d rows of images n0..n1-1 = the convolution of x_padded (N, HP, WP*CI) with kernel2d (KH*KW*CI, 16).

    positions is `_window_positions` of the convolution's `ConvGeometry.loop_sizes()` and x_padded's rows;
    y2d is (N*OH*OW, 16), row (n, oh, ow). Pixels are taken PIXELS
    at a time in row-major order across the image's rows; the last group of an image starts at its
    last PIXELS pixels, recomputing a few (an image has at least PIXELS, see `usable`).
    ``fastmath={"contract"}`` lets LLVM fuse each multiply and add (one rounding, as BLAS does) and
    nothing else: the sums keep their order; ``error_model="numpy"`` leaves Python's error checks out of
    the loops.
    """
    starts, offsets = positions
    pixels = starts.size
    sums = _running_sums()
    for n in range(n0, n1):
        image = x_padded[n].ravel()
        for first in range(0, pixels, PIXELS):
            first = min(first, pixels - PIXELS)
            p0, p1, p2, p3 = starts[first], starts[first + 1], starts[first + 2], starts[first + 3]
            for c in range(CHANNELS):
                sums[0, c] = 0.0
                sums[1, c] = 0.0
                sums[2, c] = 0.0
                sums[3, c] = 0.0
            for j in range(offsets.size):
                at = offsets[j]
                v0, v1, v2, v3 = image[p0 + at], image[p1 + at], image[p2 + at], image[p3 + at]
                row = kernel2d[j]
                for c in range(CHANNELS):
                    w = row[c]
                    sums[0, c] += v0 * w
                    sums[1, c] += v1 * w
                    sums[2, c] += v2 * w
                    sums[3, c] += v3 * w
            out = n * pixels + first
            for p in range(PIXELS):
                for c in range(CHANNELS):
                    y2d[out + p, c] = sums[p, c]


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _direct8(x_padded, kernel2d, y2d, positions, n0, n1):
    """`_direct16` for 8 output channels, NARROW_PIXELS (8) pixels at a time: the same sums, in the same
    order. kernel2d is (K, 8), a panel of `kernel_panels`; an image has at least NARROW_PIXELS pixels."""
    starts, offsets = positions
    pixels = starts.size
    sums = _running_narrow_sums()
    for n in range(n0, n1):
        image = x_padded[n].ravel()
        for first in range(0, pixels, NARROW_PIXELS):
            first = min(first, pixels - NARROW_PIXELS)
            p0, p1, p2, p3 = starts[first], starts[first + 1], starts[first + 2], starts[first + 3]
            p4, p5, p6, p7 = starts[first + 4], starts[first + 5], starts[first + 6], starts[first + 7]
            for c in range(NARROW_CHANNELS):
                sums[0, c] = 0.0
                sums[1, c] = 0.0
                sums[2, c] = 0.0
                sums[3, c] = 0.0
                sums[4, c] = 0.0
                sums[5, c] = 0.0
                sums[6, c] = 0.0
                sums[7, c] = 0.0
            for j in range(offsets.size):
                at = offsets[j]
                v0, v1, v2, v3 = image[p0 + at], image[p1 + at], image[p2 + at], image[p3 + at]
                v4, v5, v6, v7 = image[p4 + at], image[p5 + at], image[p6 + at], image[p7 + at]
                row = kernel2d[j]
                for c in range(NARROW_CHANNELS):
                    w = row[c]
                    sums[0, c] += v0 * w
                    sums[1, c] += v1 * w
                    sums[2, c] += v2 * w
                    sums[3, c] += v3 * w
                    sums[4, c] += v4 * w
                    sums[5, c] += v5 * w
                    sums[6, c] += v6 * w
                    sums[7, c] += v7 * w
            out = n * pixels + first
            for p in range(NARROW_PIXELS):
                for c in range(NARROW_CHANNELS):
                    y2d[out + p, c] = sums[p, c]


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _direct32(x_padded, panels, y2d, positions, n0, n1):
    """`_direct16` for 32 output channels (or 64: `DOUBLE_WIDE_CHANNELS`, as two runs of 32), WIDE_PIXELS (3)
    pixels at a time: the same sums, in the same order. panels is the kernel as `kernel_panels` of width 32,
    (CO // 32, K, 32); y2d has CO columns."""
    starts, offsets = positions
    pixels = starts.size
    sums = _running_wide_sums()
    for n in range(n0, n1):
        image = x_padded[n].ravel()
        for first in range(0, pixels, WIDE_PIXELS):
            first = min(first, pixels - WIDE_PIXELS)
            p0, p1, p2 = starts[first], starts[first + 1], starts[first + 2]
            out = n * pixels + first
            for panel in range(panels.shape[0]):  # 32 channels at a time
                kernel2d = panels[panel]
                c0 = panel * WIDE_CHANNELS
                for c in range(WIDE_CHANNELS):
                    sums[0, c] = 0.0
                    sums[1, c] = 0.0
                    sums[2, c] = 0.0
                for j in range(offsets.size):
                    at = offsets[j]
                    v0, v1, v2 = image[p0 + at], image[p1 + at], image[p2 + at]
                    row = kernel2d[j]
                    for c in range(WIDE_CHANNELS):
                        w = row[c]
                        sums[0, c] += v0 * w
                        sums[1, c] += v1 * w
                        sums[2, c] += v2 * w
                for p in range(WIDE_PIXELS):
                    for c in range(WIDE_CHANNELS):
                        y2d[out + p, c0 + c] = sums[p, c]


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _dkernel16(x_padded, dy2d, dkernel2d, positions, n0, n1):
    """dkernel2d (K, 16) = the kernel gradient of images n0..n1-1: for window value j and channel c, the sum over
    their pixels p of ``x_padded[n].ravel()[starts[p] + offsets[j]] * dy2d[n*OH*OW + p, c]`` (what cols.T @ dy
    sums, pixel after pixel).

    positions as for `_direct16`, dy2d (N*OH*OW, 16). DKERNEL_VALUES window values go together, their 5 x 16
    sums in registers over all the pixels of the images; the last group starts at value K - DKERNEL_VALUES,
    recomputing a few (`dkernel_usable`: K >= DKERNEL_VALUES)."""
    starts, offsets = positions
    pixels = starts.size
    k = offsets.size
    sums = _running_dkernel_sums()
    for first in range(0, k, DKERNEL_VALUES):
        first = min(first, k - DKERNEL_VALUES)
        a0, a1, a2 = offsets[first], offsets[first + 1], offsets[first + 2]
        a3, a4 = offsets[first + 3], offsets[first + 4]
        for c in range(CHANNELS):
            sums[0, c] = 0.0
            sums[1, c] = 0.0
            sums[2, c] = 0.0
            sums[3, c] = 0.0
            sums[4, c] = 0.0
        for n in range(n0, n1):
            image = x_padded[n].ravel()
            rows = dy2d[n * pixels : (n + 1) * pixels]
            for p in range(pixels):
                at = starts[p]
                v0, v1, v2, v3, v4 = image[at + a0], image[at + a1], image[at + a2], image[at + a3], image[at + a4]
                row = rows[p]
                for c in range(CHANNELS):
                    w = row[c]
                    sums[0, c] += v0 * w
                    sums[1, c] += v1 * w
                    sums[2, c] += v2 * w
                    sums[3, c] += v3 * w
                    sums[4, c] += v4 * w
        for j in range(DKERNEL_VALUES):
            for c in range(CHANNELS):
                dkernel2d[first + j, c] = sums[j, c]
