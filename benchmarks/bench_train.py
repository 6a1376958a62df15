"""(a) One training step of every zoo model at its MODELS.md batch size, scratchnet and TensorFlow."""
from benchmarks import workloads


def make_train_step(engine_name, model_name):
    if engine_name == "scratchnet":
        from benchmarks import sn_side
        return sn_side.make_train_step(model_name)
    from benchmarks import tf_side
    return tf_side.make_train_step(model_name)


def test_train_step(measure, model_name, engine_name):
    body = make_train_step(engine_name, model_name)
    measure(body, group=f"train:{model_name}", flops=workloads.train_flops(model_name), suite="train",
            model=model_name, engine=engine_name, batch=workloads.batch_size(model_name))
