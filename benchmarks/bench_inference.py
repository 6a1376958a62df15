"""(b) Inference on 1,000 images (batches of 100) for every zoo model: scratchnet, TensorFlow and PyTorch."""
from benchmarks import side, workloads


def test_inference(measure, model_name, engine_name, engine_info):
    body = side(engine_name).make_inference(model_name)
    n = workloads.INFERENCE_IMAGES
    measure(body, group=f"infer:{model_name}", flops=workloads.forward_flops(model_name, n), suite="infer",
            model=model_name, engine=engine_name, batch=workloads.INFERENCE_BATCH, images=n,
            **engine_info(model_name))
