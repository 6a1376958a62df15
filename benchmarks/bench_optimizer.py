"""The optimizer update alone (all weights of a zoo model, one step), scratchnet and TensorFlow.

Not one of issue 5's three suites, but a profile of deep_mnist (3.3 M weights, Adam) shows the update is a
large share of its step; this keeps it measured.
"""
from benchmarks import workloads


def test_optimizer_update(measure, model_name, engine_name):
    if engine_name == "scratchnet":
        from benchmarks import sn_side
        body = sn_side.make_optimizer_update(model_name)
    else:
        from benchmarks import tf_side
        body = tf_side.make_optimizer_update(model_name)
    from scratchnet import zoo

    measure(body, group=f"optimizer:{model_name}", flops=None, suite="optimizer", model=model_name,
            engine=engine_name, optimizer=zoo.defaults(model_name).optimizer,
            params=workloads.num_params(model_name))
