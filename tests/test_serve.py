"""scratchnet.serve over plain HTTP: the API contract, every refusal, the corrections folder, reload, the CLI.

The page itself is driven in a real browser in test_serve_browser.py, which shares the trained model below.
"""

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from scratchnet import imageprep, predict, zoo
from scratchnet.serve import Corrections, Reader, cli, images, make_server
from scratchnet.serve.corrections import folder_name
from scratchnet.serve.reader import DATASET_CLASSES, EMNIST_BALANCED, EMNIST_BYCLASS, ClassesError, model_classes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEVEN = [[(0.25, 0.22), (0.75, 0.2), (0.55, 0.52), (0.43, 0.85)]]


def trained_model_file(tmp_path_factory):
    """The default recipe's CNN (kaggle_cnn) trained for one epoch on 20,000 real MNIST digits, saved once
    per test session in pytest's session folder (about 20 s; test accuracy about 96%)."""
    from scratchnet.data.errors import DataError
    from scratchnet.data.mnist import load_mnist

    path = tmp_path_factory.getbasetemp() / "serve-kaggle_cnn-mnist20k.npz"
    if not path.exists():
        try:
            (x_train, y_train), _ = load_mnist(download=False, progress=False)
        except DataError as error:
            pytest.skip(f"MNIST not available offline: {error}")
        model = zoo.build("kaggle_cnn", seed=0)
        model.fit(x_train[:20000, ..., None].astype(np.float32) / 255, y_train[:20000], batch_size=32, epochs=1,
                  verbose=0, seed=0)
        model.save(path)
    return path


def drawing_png(strokes=SEVEN, side=280, width=None, fmt="PNG") -> bytes:
    """Black strokes (lists of (x, y) in 0..1) on white paper, like the page sends them."""
    image = Image.new("RGB", (side, side), "white")
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        pen.line([(x * side, y * side) for x, y in stroke], fill="black", width=width or side // 14, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


class Client:
    """A plain http.client talking to one server."""

    def __init__(self, port):
        self.port = port

    def request(self, method, path, body=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            return response.status, dict(response.getheaders()), data
        finally:
            connection.close()

    def json(self, method, path, body=None, headers=None):
        status, response_headers, data = self.request(method, path, body, headers)
        assert response_headers["Content-Type"] == "application/json", data[:200]
        return status, json.loads(data)

    def predict(self, body, content_type="image/png", query=""):
        return self.json("POST", "/api/predict" + query, body, {"Content-Type": content_type})


def start(reader, corrections):
    server = make_server(reader, "127.0.0.1", 0, corrections=corrections)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return trained_model_file(tmp_path_factory)


@pytest.fixture(scope="module")
def served(model_path, tmp_path_factory):
    """A running server on a free loopback port, its Reader, and its (empty) corrections folder."""
    reader = Reader(model_path)
    corrections = Corrections(tmp_path_factory.mktemp("handwriting"))
    server = start(reader, corrections)
    yield Client(server.server_address[1]), reader, corrections
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------------------------------ the contract
def test_model_route_gives_name_classes_and_parameter_count(served, model_path):
    client, _, corrections = served
    status, info = client.json("GET", "/api/model")
    assert status == 200
    assert info["name"] == "kaggle_cnn"
    assert info["classes"] == [str(d) for d in range(10)]
    assert info["parameters"] == zoo.build("kaggle_cnn").count_params() == 37610
    assert info["feature_layer"] == "conv2d"
    assert info["corrections"]["folder"] == str(corrections.folder)


def test_a_drawn_seven_is_read_as_seven_with_the_full_answer(served):
    client, _, _ = served
    status, answer = client.predict(drawing_png())
    assert status == 200
    assert (answer["label"], answer["index"]) == ("7", 7)
    assert answer["classes"] == [str(d) for d in range(10)]
    p = np.array(answer["probabilities"])
    assert p.shape == (10,) and abs(p.sum() - 1) < 1e-4 and p.argmax() == 7
    assert answer["top"][0]["label"] == "7" and len(answer["top"]) == 5
    assert all(a["probability"] >= b["probability"] for a, b in zip(answer["top"], answer["top"][1:]))
    x = np.array(answer["input"])
    assert x.shape == (28, 28) and x.min() >= 0 and x.max() == pytest.approx(1, abs=1e-3)
    assert "features" not in answer
    assert set(answer["timing_ms"]) == {"prepare", "model", "total"}


def test_page_and_predict_function_agree(served, model_path, tmp_path):
    """The server prepares images with the function scratchnet.predict uses: same input, same probabilities."""
    client, _, _ = served
    body = drawing_png([[(0.3, 0.2), (0.35, 0.8)], [(0.2, 0.5), (0.7, 0.45)]])
    (tmp_path / "drawing.png").write_bytes(body)
    _, answer = client.predict(body)
    model = predict.load_model_or_explain(model_path)
    expected = predict.predict(model, [tmp_path / "drawing.png"])[0]
    assert answer["index"] == expected.digit
    assert answer["probability"] == pytest.approx(expected.probability, abs=1e-5)
    np.testing.assert_allclose(answer["input"], imageprep.prepare(tmp_path / "drawing.png"), atol=1e-4)


def test_features_are_the_first_conv_layers_output(served, model_path):
    client, _, _ = served
    _, answer = client.predict(drawing_png(), query="?features=1")
    features = answer["features"]
    assert features["layer"] == "conv2d" and features["shape"] == [24, 24, 8]
    maps = np.array(features["maps"])
    assert maps.shape == (8, 24, 24) and maps.min() >= 0  # relu
    # recompute a few outputs by the convolution's definition: relu(sum(window * kernel) + bias)
    model = predict.load_model_or_explain(model_path)
    kernel, bias = model.layers[0].params["kernel"], model.layers[0].params["bias"]
    x = np.array(answer["input"])
    for row, col, f in [(10, 12, 0), (4, 9, 3), (17, 8, 7), (0, 0, 5)]:
        value = max(0.0, float((x[row:row + 5, col:col + 5] * kernel[:, :, 0, f]).sum() + bias[f]))
        assert maps[f, row, col] == pytest.approx(value, abs=2e-3)


def test_a_jpeg_is_read_too(served):
    client, _, _ = served
    status, answer = client.predict(drawing_png(fmt="JPEG"), content_type="image/jpeg")
    assert status == 200 and answer["label"] == "7"


def test_a_model_without_convolutions_has_no_feature_maps(tmp_path):
    path = tmp_path / "mlp.npz"
    zoo.build("mlp", seed=0).save(path)
    reader = Reader(path)
    reading = reader.read(Image.open(io.BytesIO(drawing_png())), features=True)
    assert reader.info()["feature_layer"] is None and reading.features is None
    assert reading.probabilities.shape == (10,)


# ------------------------------------------------------------------------------------------ refusals
def test_a_body_over_the_limit_gets_413(served):
    client, _, _ = served
    body = b"\x89PNG\r\n\x1a\n" + bytes(images.MAX_BODY_BYTES)
    status, answer = client.predict(body)
    assert status == 413 and "limit" in answer["error"]
    assert client.predict(drawing_png())[0] == 200  # and the server is fine


def test_a_body_that_is_no_image_gets_415(served):
    client, _, _ = served
    status, answer = client.predict(b"GIF89a not what we read")
    assert status == 415 and "PNG or JPEG" in answer["error"]
    status, answer = client.predict(drawing_png(), content_type="text/plain")
    assert status == 415 and "text/plain" in answer["error"]
    status, answer = client.json("POST", "/api/predict", drawing_png())  # no Content-Type at all
    assert status == 415


def test_an_undecodable_empty_blank_or_huge_image_gets_a_json_error(served):
    client, _, _ = served
    status, answer = client.predict(drawing_png()[:200])
    assert status == 400 and "does not decode" in answer["error"]
    assert client.predict(b"")[0] == 400
    status, answer = client.predict(drawing_png(strokes=[]))
    assert status == 422 and "no ink" in answer["error"]
    bomb = io.BytesIO()
    Image.new("1", (6000, 6000), 1).save(bomb, format="PNG")  # 36 megapixels in a few kilobytes
    status, answer = client.predict(bomb.getvalue())
    assert status == 400 and "6000x6000" in answer["error"]


def test_only_fixed_routes_are_served(served):
    client, _, _ = served
    for path in ("/../pyproject.toml", "/static/app.js", "/%2e%2e/reader.py", "/api/nothing", "/index.html"):
        status, headers, _ = client.request("GET", path)
        assert status == 404, path
        assert "Content-Security-Policy" in headers
    status, headers, body = client.request("GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b'id="pad"' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert client.request("GET", "/app.js")[1]["Content-Type"].startswith("text/javascript")
    assert client.request("GET", "/api/predict")[0] == 405
    assert client.request("DELETE", "/")[0] == 405


def test_a_foreign_host_or_origin_is_refused(served):
    client, _, _ = served
    port = client.port
    status, answer = client.json("GET", "/api/model", headers={"Host": f"attacker.example:{port}"})
    assert status == 403 and "attacker.example" in answer["error"]
    assert client.json("GET", "/api/model", headers={"Host": "[::1"})[0] == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "127.0.0.1"):
        assert client.request("GET", "/api/model", headers={"Host": host})[0] == 200
    status, _ = client.json("POST", "/api/predict", drawing_png(),
                            {"Content-Type": "image/png", "Origin": "http://attacker.example"})
    assert status == 403
    status, _ = client.json("POST", "/api/predict", drawing_png(),
                            {"Content-Type": "image/png", "Origin": f"http://127.0.0.1:{port}"})
    assert status == 200


def test_garbage_and_concurrent_requests_do_not_break_the_server(served):
    client, _, _ = served
    for garbage, expected in ((b"\x16\x03\x01 not http at all\r\n\r\n", b'{"error":'),
                              (b"BREW /pot HTTP/1.1\r\n\r\n", b"HTTP/1.1 501"),
                              (b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 70000 + b"\r\n\r\n", b"HTTP/1.1 431")):
        with socket.create_connection(("127.0.0.1", client.port), timeout=10) as raw:
            raw.sendall(garbage)
            reply = b"".join(iter(lambda: raw.recv(4096), b""))  # until the server closes
        assert reply.startswith(expected) and b'"error"' in reply, reply[:100]
    results = []

    def ask():
        results.append(client.predict(drawing_png())[1]["label"])

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == ["7"] * 6


# ------------------------------------------------------------------------------------------ corrections
def test_a_correction_is_saved_as_a_numbered_png_under_its_label(served):
    client, _, corrections = served
    saved = []
    for expected in (1, 2):
        status, answer = client.json("POST", "/api/correct?label=1", drawing_png(), {"Content-Type": "image/png"})
        assert status == 201 and answer["label"] == "1" and answer["count"] == expected
        saved.append(answer["saved"])
    assert saved == [str(corrections.folder / "1" / "0001.png"), str(corrections.folder / "1" / "0002.png")]
    with Image.open(saved[0]) as image:
        assert image.format == "PNG" and image.mode == "L" and image.size == (280, 280)
        assert imageprep.prepare(image).max() > 0.9  # the drawing, not a blank page


def test_a_correction_with_a_label_outside_the_classes_writes_nothing(served):
    client, _, corrections = served
    before = sorted(p for p in corrections.folder.rglob("*"))
    for query in ("?label=../../evil", "?label=A", "?label=", "", "?label=%2Ftmp%2Fx"):
        status, _ = client.json("POST", "/api/correct" + query, drawing_png(), {"Content-Type": "image/png"})
        assert status == 400, query
    status, _ = client.json("POST", "/api/correct?label=3", drawing_png(strokes=[]), {"Content-Type": "image/png"})
    assert status == 422
    assert sorted(p for p in corrections.folder.rglob("*")) == before


def test_folder_names_are_safe_for_every_class():
    assert folder_name("7") == "7" and folder_name("A") == "A"
    assert folder_name("T-shirt/top") == "T-shirt_top"
    assert folder_name("..") not in (".", "..") and "/" not in folder_name("../x")


# ------------------------------------------------------------------------------------------ reload
def test_reload_serves_the_new_file_and_keeps_the_old_model_when_the_new_one_is_bad(model_path, tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(model_path.read_bytes())
    server = start(Reader(path), Corrections(tmp_path / "handwriting"))
    client = Client(server.server_address[1])
    try:
        assert client.json("GET", "/api/model")[1]["name"] == "kaggle_cnn"
        zoo.build("mlp", seed=0).save(path)
        status, info = client.json("POST", "/api/reload")
        assert status == 200 and info["name"] == "mlp" and info["parameters"] == 42310
        assert client.json("GET", "/api/model")[1]["feature_layer"] is None
        path.write_bytes(b"not a model")
        status, answer = client.json("POST", "/api/reload")
        assert status == 409 and "previous model" in answer["error"]
        assert client.json("GET", "/api/model")[1]["name"] == "mlp"
        assert client.predict(drawing_png())[0] == 200
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------ classes
def test_model_classes_follow_the_zoo_recipe_then_the_width():
    from scratchnet import datasets

    assert set(datasets.NAMES) <= set(DATASET_CLASSES)
    assert all(len(DATASET_CLASSES[name]) == len(set(DATASET_CLASSES[name])) for name in DATASET_CLASSES)
    assert model_classes("kaggle_cnn", 10) == tuple("0123456789")
    assert model_classes("notmnist_cnn", 10) == tuple("ABCDEFGHIJ")
    assert model_classes("emnist_cnn", 62) == EMNIST_BYCLASS and len(set(EMNIST_BYCLASS)) == 62
    assert model_classes("emnist_cnn", 47) == EMNIST_BALANCED and len(set(EMNIST_BALANCED)) == 47
    assert model_classes("mlp", 26)[0] == "A" and model_classes("my_model", 7) == tuple("0123456")
    assert model_classes("mlp", 10, "fashion-mnist")[0] == "T-shirt/top"
    assert model_classes("mlp", 3, "cat, dog,bird") == ("cat", "dog", "bird")
    for bad in ("a,b", "a,a,b", "emnist-letters"):
        with pytest.raises(ClassesError, match="--classes"):
            model_classes("mlp", 3, bad)


def test_a_notmnist_model_gets_centred_pixels_as_its_recipe_trained_it():
    prepared = np.full((1, 28, 28), 0.25, np.float32)
    assert predict.to_model_input(zoo.build("notmnist_cnn"), prepared).max() == pytest.approx(-0.25)
    assert predict.to_model_input(zoo.build("kaggle_cnn"), prepared).max() == pytest.approx(0.25)


# ------------------------------------------------------------------------------------------ the CLI
def run_serve(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "scratchnet.serve", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=dict(os.environ, **(env or {})), timeout=timeout, check=False)


def test_cli_prints_one_serving_line_and_answers_on_the_port_it_picked(model_path, tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "scratchnet.serve", "--model", str(model_path), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                               env=dict(os.environ, SCRATCHNET_HOME=str(tmp_path)))
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("serving on http://127.0.0.1:") and line.endswith("/"), line
        port = int(line.rsplit(":", 1)[1].rstrip("/"))
        assert port != 0
        status, info = Client(port).json("GET", "/api/model")
        assert status == 200 and info["corrections"]["folder"] == str(tmp_path / "handwriting")
    finally:
        process.terminate()
        process.wait(30)


def test_cli_without_a_default_model_says_how_to_make_one(tmp_path):
    done = run_serve("--port", "0", env={"SCRATCHNET_HOME": str(tmp_path)})
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "./run.sh train" in lines[0] and "default" in lines[0]


def test_cli_refuses_bad_options(model_path, capsys):
    assert run_serve("--port", "70000").returncode == 2
    assert cli.main(["--model", str(model_path), "--classes", "a,b,c"]) == 1
    assert "10 outputs" in capsys.readouterr().err
    # an address that is not this machine's: the warning, then a clean failure to listen
    assert cli.main(["--model", str(model_path), "--host", "192.0.2.1", "--port", "0"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: listening on 192.0.2.1") and err[1].startswith("error: cannot listen")


def test_cli_warns_only_for_non_loopback_hosts():
    from scratchnet.serve.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")


def test_one_prediction_is_fast_enough_to_feel_live(served):
    """A generous bound on a shared machine: the page sends one request per stroke and while drawing."""
    client, _, _ = served
    body = drawing_png()
    client.predict(body)
    start = time.perf_counter()
    status, answer = client.predict(body, query="?features=1")
    assert status == 200 and time.perf_counter() - start < 5.0
    assert answer["timing_ms"]["total"] <= 1000 * (time.perf_counter() - start)
