"""The optimizer update alone (all weights of a zoo model, one step): scratchnet, TensorFlow and PyTorch.

Not one of issue 5's three suites, but a profile of deep_mnist (3.3 M weights, Adam) shows the update is a
large share of its step; this keeps it measured.
"""
from benchmarks import side, workloads


def test_optimizer_update(measure, model_name, engine_name, engine_info):
    from scratchnet import zoo

    body = side(engine_name).make_optimizer_update(model_name)
    measure(body, group=f"optimizer:{model_name}", flops=None, suite="optimizer", model=model_name,
            engine=engine_name, optimizer=zoo.defaults(model_name).optimizer,
            params=workloads.num_params(model_name), **engine_info(model_name))
