"""(b) Inference on 1,000 images (batches of 100) for every zoo model, scratchnet and TensorFlow."""
from benchmarks import workloads


def make_inference(engine_name, model_name):
    if engine_name == "scratchnet":
        from benchmarks import sn_side
        return sn_side.make_inference(model_name)
    from benchmarks import tf_side
    return tf_side.make_inference(model_name)


def test_inference(measure, model_name, engine_name):
    body = make_inference(engine_name, model_name)
    n = workloads.INFERENCE_IMAGES
    measure(body, group=f"infer:{model_name}", flops=workloads.forward_flops(model_name, n), suite="infer",
            model=model_name, engine=engine_name, batch=workloads.INFERENCE_BATCH, images=n)
