"""(c) The hot ops at the zoo's shapes: conv2d and max-pool, forward and backward.

Engines: "scratchnet" (the numba kernels, the default backend), "numpy" (scratchnet's readable reference
ops, to show each kernel earns its place) and "tensorflow" (tf.nn / raw gradient ops in a tf.function).
Parametrised by benchmarks/conftest.py: op_case (each conv/pool shape of the zoo), direction, op_engine.
"""


def make_op(op_engine, case, direction):
    if op_engine == "tensorflow":
        from benchmarks import tf_side
        return tf_side.make_op(case, direction)
    from benchmarks import sn_side
    return sn_side.make_op(case, direction, backend="numba" if op_engine == "scratchnet" else "numpy")


def test_op(measure, op_case, op_engine, direction):
    body = make_op(op_engine, op_case, direction)
    flops = op_case.forward_flops() if direction == "forward" else op_case.backward_flops()
    measure(body, group=f"op:{op_case.id}:{direction}", flops=flops or None, suite="ops", op=op_case.op,
            case=op_case.id, where=op_case.where, direction=direction, engine=op_engine,
            x_shape=list(op_case.x_shape), y_shape=list(op_case.y_shape))
