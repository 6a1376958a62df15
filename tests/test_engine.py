"""The dispatch point (scratchnet.engine) switches backends correctly, and the thread policy applies."""
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchnet import engine, kernels, ops
from scratchnet.runtime import allocator, threads


@pytest.fixture(autouse=True)
def restore_backend():
    previous = engine.get_backend()
    yield
    engine.set_backend(previous)


def _run_python(code, **env):
    environment = {**os.environ, **env}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )
    return result


def test_numba_backend_serves_accelerated_ops_from_kernels_and_the_rest_from_ops():
    engine.set_backend("numba")
    for name in engine.ACCELERATED:
        assert getattr(engine, name) is getattr(kernels, name)
    assert engine.sigmoid_backward is ops.sigmoid_backward
    assert engine.softmax_cross_entropy_backward is ops.softmax_cross_entropy_backward
    assert set(engine.ACCELERATED) == set(kernels.__all__)


def test_numpy_backend_serves_every_op_from_ops():
    engine.set_backend("numpy")
    for name in engine.op_names():
        assert getattr(engine, name) is getattr(ops, name), name


def test_engine_exposes_every_op_of_ops():
    assert set(ops.__all__) <= set(engine.op_names())
    assert set(engine.ACCELERATED) <= set(engine.op_names())
    assert set(engine.op_names()) <= set(dir(engine))


def test_switching_takes_effect_for_calls_made_after_it():
    x = np.random.default_rng(0).standard_normal((1, 5, 5, 1))
    kernel = np.ones((3, 3, 1, 1))
    engine.set_backend("numba")
    y_fast, cache_fast = engine.conv2d_forward(x, kernel, 1, "same")
    assert engine.conv2d_forward is kernels.conv2d_forward
    engine.set_backend("numpy")
    y_slow, cache_slow = engine.conv2d_forward(x, kernel, 1, "same")
    assert engine.conv2d_forward is ops.conv2d_forward
    np.testing.assert_allclose(y_fast, y_slow, rtol=1e-12)


def test_backend_context_manager_restores_the_previous_backend_even_on_error():
    engine.set_backend("numba")
    with engine.backend("NumPy") as name:
        assert name == "numpy" and engine.get_backend() == "numpy"
        assert engine.max_pool2d_forward is ops.max_pool2d_forward
    assert engine.get_backend() == "numba"
    with pytest.raises(RuntimeError), engine.backend("numpy"):
        raise RuntimeError("boom")
    assert engine.get_backend() == "numba"
    assert engine.max_pool2d_forward is kernels.max_pool2d_forward


def test_set_backend_returns_the_previous_one_and_rejects_unknown_names():
    engine.set_backend("numba")
    assert engine.set_backend("numpy") == "numba"
    with pytest.raises(ValueError, match="'torch'"):
        engine.set_backend("torch")
    assert engine.get_backend() == "numpy"


def test_unknown_op_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_op"):
        engine.no_such_op_forward  # noqa: B018
    assert not hasattr(engine, "no_such_op_forward")


def test_environment_variable_chooses_the_backend_and_is_validated():
    code = "import scratchnet.engine as e; print(e.get_backend(), e.conv2d_forward.__module__)"
    result = _run_python(code, SCRATCHNET_BACKEND="numpy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["numpy", "scratchnet.ops.conv"]
    result = _run_python(code, SCRATCHNET_BACKEND="cuda")
    assert result.returncode != 0
    assert "SCRATCHNET_BACKEND" in result.stderr and "'cuda'" in result.stderr


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="nothing is compiled without the JIT")
def test_importing_the_engine_compiles_nothing():
    code = (
        "import sys, scratchnet.engine as e\n"
        "assert 'numba' not in sys.modules, 'engine import pulled in numba'\n"
        "e.conv2d_forward; e.max_pool2d_backward\n"
        "from scratchnet.kernels import im2col, pooling\n"
        "kernels = [im2col._im2col, im2col._col2im_add, pooling._max_pool_forward, pooling._max_pool_backward]\n"
        "assert all(not k.signatures for k in kernels), 'compiled before the first call'\n"
        "print('ok')\n"
    )
    result = _run_python(code, SCRATCHNET_BACKEND="numba")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_threads_configure_sets_blas_threads_and_reports_them(monkeypatch):
    monkeypatch.delenv("SCRATCHNET_NUM_THREADS", raising=False)
    try:
        report = threads.configure(num_threads=1)
        assert report["configured"] and report["num_threads"] == 1
        assert all(entry["num_threads"] == 1 for entry in report["blas"])
        assert report["numba_pool_started"] is False  # serial kernels: numba's pool never starts
    finally:
        threads.configure()  # back to the default policy
    report = threads.info()
    assert report["num_threads"] == threads.available_cores()


def test_threads_configure_reads_and_validates_its_inputs(monkeypatch):
    try:
        monkeypatch.setenv("SCRATCHNET_NUM_THREADS", "1")
        assert threads.configure()["num_threads"] == 1
        monkeypatch.setenv("SCRATCHNET_NUM_THREADS", "many")
        with pytest.raises(ValueError, match="SCRATCHNET_NUM_THREADS"):
            threads.configure()
        with pytest.raises(ValueError, match="num_threads"):
            threads.configure(num_threads=0)
    finally:
        monkeypatch.delenv("SCRATCHNET_NUM_THREADS")
        threads.configure()


def test_parallel_map_keeps_order_and_holds_blas_at_one_thread():
    from threadpoolctl import threadpool_info

    def numpy_blas(entry):  # numba may load scipy's OpenBLAS too; only NumPy's runs our matmuls
        return entry["user_api"] == "blas" and "numpy" in entry["filepath"]

    def blas_threads(item):
        return item, [e["num_threads"] for e in threadpool_info() if numpy_blas(e)]

    previous = threads.num_threads()
    try:
        threads.configure(num_threads=2)
        results = threads.parallel_map(blas_threads, list(range(5)))
        assert [item for item, _ in results] == list(range(5))
        assert all(counts == [1] * len(counts) for _, counts in results), results
        assert threads.parallel_map(blas_threads, [7], parallel=False)[0][1] == [1] * len(results[0][1])
        assert all(e["num_threads"] == 2 for e in threadpool_info() if numpy_blas(e))
        assert results[0][1], "NumPy's BLAS not found"
    finally:
        threads.configure(num_threads=previous)


def test_serial_blas_holds_blas_at_one_thread_and_nests():
    from threadpoolctl import threadpool_info

    def numpy_blas_threads():
        return [e["num_threads"] for e in threadpool_info() if e["user_api"] == "blas" and "numpy" in e["filepath"]]

    previous = threads.num_threads()
    try:
        threads.configure(num_threads=2)
        with threads.serial_blas():
            assert numpy_blas_threads() == [1]
            with threads.serial_blas():
                assert numpy_blas_threads() == [1]
            assert numpy_blas_threads() == [1]
        assert numpy_blas_threads() == [2]
    finally:
        threads.configure(num_threads=previous)


@pytest.mark.parametrize("backend, inside", [("numba", [1]), ("numpy", [2])])
def test_a_training_step_holds_blas_at_one_thread_on_the_numba_backend_only(backend, inside):
    """The numba backend's step holds BLAS at one thread once (its ops never use BLAS's threads); the numpy
    backend's products keep BLAS's threads. After the step BLAS is back at the policy's count."""
    from threadpoolctl import threadpool_info

    from scratchnet import layers
    from scratchnet.models import Sequential

    def numpy_blas_threads():
        return [e["num_threads"] for e in threadpool_info() if e["user_api"] == "blas" and "numpy" in e["filepath"]]

    seen = []

    class Probe(layers.Flatten):
        def forward(self, x, training=False):
            seen.append(("forward", numpy_blas_threads()))
            return super().forward(x, training)

        def backward(self, dy):
            seen.append(("backward", numpy_blas_threads()))
            return super().backward(dy)

    previous = threads.num_threads()
    try:
        threads.configure(num_threads=2)
        with engine.backend(backend):
            model = Sequential([layers.Dense(5), Probe(), layers.Dense(3, activation="softmax")], input_shape=(4,),
                               seed=0)
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
            model.train_step(np.ones((4, 4), np.float32), np.array([0, 1, 2, 0]))
            model.predict(np.ones((4, 4), np.float32))
        assert seen == [("forward", inside), ("backward", inside), ("forward", inside)]
        assert numpy_blas_threads() == [2]
    finally:
        threads.configure(num_threads=previous)


@pytest.mark.parametrize("shapes", [((7, 5), (5, 3)), ((3, 4), (4, 9)), ((2, 9), (9, 4))],
                         ids=["batch_biggest", "kernel_biggest_wide", "kernel_biggest_tall"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_twin_is_the_reference_arithmetic_whole_and_split_over_threads(monkeypatch, dtype, shapes):
    from scratchnet.kernels import dense as kdense

    rng = np.random.default_rng(2)
    x, kernel, bias = (rng.standard_normal(s).astype(dtype) for s in (shapes[0], shapes[1], shapes[1][1:]))
    dy = rng.standard_normal((shapes[0][0], shapes[1][1])).astype(dtype)
    y_ref, cache_ref = ops.dense_forward(x, kernel, bias)
    grads_ref = ops.dense_backward(dy, cache_ref)
    rtol = 1e-6 if dtype == np.float32 else 1e-14

    def assert_close(got, want):  # to rtol of each value, or of the array's scale for values that cancel
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))

    previous = threads.num_threads()
    threads.configure(num_threads=2)
    try:
        for threshold in (0, 10**9):  # every product cut into pieces (one row each here), then every one whole
            monkeypatch.setattr(kdense, "DENSE_PARALLEL_MIN_MACS", threshold)
            y, cache = kernels.dense_forward(x, kernel, bias.astype(np.float64))
            assert y.dtype == dtype and cache[1].dtype == dtype
            assert_close(y, y_ref)
            for got, want in zip(kernels.dense_backward(dy, cache), grads_ref):
                assert got.dtype == dtype
                assert_close(got, want)
            assert kernels.dense_backward(dy, cache, need_dx=False)[0] is None
            with pytest.raises(ValueError, match="kernel"):
                kernels.dense_forward(x, kernel.T, bias)
            with pytest.raises(ValueError, match="bias"):
                kernels.dense_forward(x, kernel, bias[:-1])
    finally:
        threads.configure(num_threads=previous)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_first_op_lookup_fixes_the_mmap_threshold_so_freed_big_arrays_leave_the_process():
    """With glibc's sliding threshold a second 20 MB array comes from the heap and stays resident when freed."""
    code = (
        "import numpy as np\n"
        "from scratchnet.runtime import allocator\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * 4096\n"
        "fixed = allocator.fix_mmap_threshold() if {fix} else False\n"
        "before = rss()\n"
        "for _ in range(3):\n"
        "    a = np.ones(5_000_000, np.float32); del a\n"
        "print(fixed, rss() - before)\n"
    )
    fixed, grown = _run_python(code.format(fix=True)).stdout.split()
    if fixed != "True":
        pytest.skip("not glibc")
    assert int(grown) < 5_000_000
    _, grown_by_default = _run_python(code.format(fix=False)).stdout.split()
    assert int(grown_by_default) > 15_000_000  # the test would catch a threshold left sliding


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
@pytest.mark.parametrize("values", [500_000, 3_000_000])  # 2 MB; 12 MB (deep_mnist's activations at batch 100)
def test_the_trim_threshold_keeps_small_freed_arrays_in_the_heap_instead_of_faulting_them_in_again(values):
    """An array below the mmap threshold made and freed 20 times: with the mmap threshold alone fixed (trim
    left at 128 kB) the heap top goes back to the OS every time and comes back as page faults; with both
    fixed it stays."""
    code = (
        "import ctypes, resource\n"
        "import numpy as np\n"
        "from scratchnet.runtime import allocator\n"
        "fixed = allocator.fix_mmap_threshold()\n"
        "if not {trim}:\n"
        "    ctypes.CDLL(None).mallopt(-1, 128 * 1024)  # glibc's default trim threshold\n"
        "a = np.ones({values}, np.float32); del a\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(20):\n"
        "    a = np.ones({values}, np.float32); del a\n"
        "print(fixed, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    fixed, faults = _run_python(code.format(trim=True, values=values)).stdout.split()
    if fixed != "True":
        pytest.skip("not glibc")
    assert int(faults) < 100
    _, faults_without_trim = _run_python(code.format(trim=False, values=values)).stdout.split()
    assert int(faults_without_trim) > 2_000  # every round faults the array in again (in huge pages where
    # NumPy asks for them): the test would catch a lost setting


def test_the_numba_backend_fixes_the_mmap_threshold_when_its_kernels_load():
    engine.implementation("relu_forward", "numba")  # imports scratchnet.kernels, which prepares the runtime
    if sys.platform.startswith("linux"):
        assert allocator.is_fixed()
