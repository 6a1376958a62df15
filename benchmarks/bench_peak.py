"""The yardstick for "% of peak": a 4096 x 4096 float32 matrix product in NumPy (BLAS sgemm), same process.

Run under scratchnet's thread policy (BLAS gets every core the process may use), as the engine's matmuls are.
"""
import numpy as np

SIZE = 4096


def test_sgemm_peak(measure):
    from scratchnet.runtime import threads

    threads.ensure_configured()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((SIZE, SIZE), dtype=np.float32)
    b = rng.standard_normal((SIZE, SIZE), dtype=np.float32)
    out = np.empty((SIZE, SIZE), dtype=np.float32)

    def sgemm():
        return np.matmul(a, b, out=out)

    policy = threads.info()
    measure(sgemm, group="peak", flops=2.0 * SIZE**3, suite="peak", engine="numpy", size=SIZE,
            thread_policy={key: policy.get(key) for key in ("policy", "num_threads", "available_cores")})
