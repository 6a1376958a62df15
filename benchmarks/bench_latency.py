"""(d) Single-image latency: one image, NumPy in, probabilities out as NumPy, through a loaded model.

scratchnet: ``model.predict`` on a model saved and loaded back, as ``python -m scratchnet.predict`` reads
one image. TensorFlow: a ``@tf.function`` forward (its fastest way to run one image). PyTorch: the eager
forward under ``torch.inference_mode()``. Each round is one call: the median is the latency of one image.
"""
from benchmarks import side, workloads

MAX_ROUNDS = 2000
"""A call takes tens of microseconds to milliseconds: many more rounds than the other suites fit in the time."""


def test_latency(measure, model_name, engine_name, engine_info):
    body = side(engine_name).make_latency(model_name)
    measure(body, group=f"latency:{model_name}", flops=workloads.forward_flops(model_name, 1), suite="latency",
            model=model_name, engine=engine_name, batch=1, images=1, max_rounds=MAX_ROUNDS,
            **engine_info(model_name))
