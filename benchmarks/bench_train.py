"""(a) One training step of every zoo model at its MODELS.md batch size: scratchnet, TensorFlow and PyTorch."""
from benchmarks import side, workloads


def test_train_step(measure, model_name, engine_name, engine_info):
    body = side(engine_name).make_train_step(model_name)
    measure(body, group=f"train:{model_name}", flops=workloads.train_flops(model_name), suite="train",
            model=model_name, engine=engine_name, batch=workloads.batch_size(model_name), **engine_info(model_name))
