"""Keras export and import: `tf_reference.transfer` (to_keras / from_keras) and the export CLI.

A scratchnet model moved to Keras (and saved, and loaded by plain ``keras.models.load_model``) must predict
what scratchnet predicts, and a Keras model moved to scratchnet likewise; weights must survive a round trip
bit for bit. Predictions are compared with ``max|a - b| / max|b|`` (infinity norms) against the parity
tolerance of the dtype (float32 1e-5, float64 1e-10).
"""
import subprocess
import sys

import numpy as np
import pytest

from scratchnet import zoo
from scratchnet.models import load_model
from tf_reference import export
from tf_reference.compare import assert_close
from tf_reference.config import deterministic
from tf_reference.transfer import TransferError, from_keras, to_keras

tf = deterministic()
import keras  # noqa: E402


def sample_inputs(model, count=16, seed=0):
    x = np.random.default_rng(seed).random((count, *model.input_shape[1:]))
    if model.name == "logreg":
        x = np.concatenate([np.ones((count, 1)), 255 * x[:, 1:]], axis=1)
    return x.astype(model.dtype)


def trained(name, dtype="float32", steps=2):
    """A zoo model after a few steps on random data, so its weights are no longer the initial ones."""
    model = zoo.build(name, seed=0, dtype=dtype)
    x = sample_inputs(model, 8, seed=1)
    labels = np.arange(8) % 2 if name == "logreg" else np.arange(8) % 10
    for _ in range(steps):
        model.train_step(x, labels[:, None] if name == "logreg" else labels)
    return model


@pytest.mark.parametrize("name", zoo.NAMES)
def test_to_keras_saved_and_loaded_by_keras_predicts_like_scratchnet(name, tmp_path):
    model = trained(name)
    keras_model = to_keras(model)
    path = tmp_path / f"{name}.keras"
    keras_model.save(path)
    loaded = keras.models.load_model(path)

    x = sample_inputs(model)
    expected = model.predict(x)
    assert_close(np.asarray(loaded.predict(x, verbose=0)), expected, what=f"{name} predictions")
    assert loaded.count_params() == model.count_params()
    assert {type(layer).__module__.split(".")[0] for layer in loaded.layers} == {"keras"}


@pytest.mark.parametrize("name", zoo.NAMES)
def test_from_keras_round_trip_keeps_every_weight_exactly(name):
    model = trained(name)
    back = from_keras(to_keras(model))
    weights, weights_back = model.get_weights(), back.get_weights()
    assert len(weights) == len(weights_back)
    for w, w_back in zip(weights, weights_back):
        assert w.dtype == w_back.dtype
        np.testing.assert_array_equal(w, w_back)
    x = sample_inputs(model)
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=0, atol=1e-6)


def test_notmnist_bias_after_pooling_becomes_a_plain_conv_bias():
    """conv -> pool -> BiasAdd -> relu exports as Conv2D(use_bias) -> MaxPooling2D -> relu, exactly."""
    model = trained("notmnist_cnn", dtype="float64")
    keras_model = to_keras(model)
    convs = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [conv.use_bias for conv in convs] == [True, True]
    x = sample_inputs(model)
    # keras_model(x), not keras_model.predict(x): predict casts inputs to the global floatx (float32).
    assert_close(np.asarray(keras_model(x)), model.predict(x), what="float64 predictions")


def test_export_carries_loss_and_optimizer():
    model = zoo.build("mlp", seed=0)
    keras_model = to_keras(model)
    assert isinstance(keras_model.optimizer, keras.optimizers.Adam)
    assert keras_model.optimizer.learning_rate.numpy() == pytest.approx(1e-3)
    back = from_keras(keras_model)
    assert type(back.optimizer).__name__ == "Adam" and back.optimizer.learning_rate == pytest.approx(1e-3)
    assert type(back.loss).__name__ == type(model.loss).__name__


def test_from_keras_refuses_a_layer_scratchnet_lacks():
    keras_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.LayerNormalization()])
    with pytest.raises(TransferError, match="LayerNormalization"):
        from_keras(keras_model)


def test_a_keras_trained_model_imports_and_predicts_the_same():
    """Train with Keras's own fit, import into scratchnet, and get Keras's predictions."""
    keras.utils.set_random_seed(0)
    keras_model = keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(3, activation="softmax"),
    ])
    keras_model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((32, 6, 6, 1)).astype("float32")
    keras_model.fit(x, rng.integers(0, 3, 32), epochs=2, batch_size=8, verbose=0)
    model = from_keras(keras_model)
    assert type(model.optimizer).__name__ == "SGD"
    assert_close(model.predict(x), np.asarray(keras_model.predict(x, verbose=0)), what="predictions")


# ------------------------------------------------------------------------------------------------
# The CLI
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "notmnist.npz"
    trained("notmnist_cnn").save(path)
    return path


def test_cli_exports_a_model_plain_keras_loads_in_a_fresh_process(saved_model, tmp_path, capsys):
    target = tmp_path / "model.keras"
    assert export.main([str(saved_model), str(target)]) == 0
    assert "wrote" in capsys.readouterr().out

    model = load_model(saved_model)
    x = sample_inputs(model)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, keras; "
        "m = keras.models.load_model(sys.argv[1]); "
        "np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0))"
    )
    subprocess.run([sys.executable, "-c", script, str(target), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                   check=True, capture_output=True, timeout=120)
    predictions = np.load(tmp_path / "y.npy")
    assert_close(predictions, model.predict(x), what="predictions of plain Keras")
    assert (predictions.argmax(axis=1) == model.predict(x).argmax(axis=1)).all()


def test_cli_imports_a_keras_file_to_a_scratchnet_file(tmp_path, capsys):
    keras_model = to_keras(trained("kaggle_cnn"))
    source, target = tmp_path / "kaggle.keras", tmp_path / "kaggle.npz"
    keras_model.save(source)
    from tf_reference import import_keras  # noqa: F401  (the module must import cleanly)

    assert export.main([str(source), str(target)], direction="import") == 0
    model = load_model(target)
    x = sample_inputs(model)
    assert_close(model.predict(x), np.asarray(keras_model.predict(x, verbose=0)), what="predictions")


@pytest.mark.parametrize("arguments, fragment", [
    (["missing.npz", "out.keras"], "cannot read scratchnet model"),
    (["missing.keras", "out.npz"], "cannot read Keras model"),
])
def test_cli_reports_a_missing_file_in_one_line(arguments, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert export.main(arguments) == 1
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_reports_a_file_that_is_not_a_model(tmp_path, capsys):
    fake = tmp_path / "page.keras"
    fake.write_text("<html>not a model</html>")
    assert export.main([str(fake), str(tmp_path / "out.npz")]) == 1
    err = capsys.readouterr().err
    assert "cannot read Keras model" in err and err.count("\n") == 1

    fake_npz = tmp_path / "page.npz"
    fake_npz.write_text("<html>not a model</html>")
    assert export.main([str(fake_npz), str(tmp_path / "out.keras")]) == 1
    err = capsys.readouterr().err
    assert "cannot read scratchnet model" in err and err.count("\n") == 1
    assert not (tmp_path / "out.keras").exists()


def test_cli_reports_an_unsupported_keras_layer(tmp_path, capsys):
    keras_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.LayerNormalization()])
    source = tmp_path / "norm.keras"
    keras_model.save(source)
    assert export.main([str(source), str(tmp_path / "norm.npz")]) == 1
    err = capsys.readouterr().err
    assert "LayerNormalization" in err and err.count("\n") == 1
    assert not (tmp_path / "norm.npz").exists()


@pytest.mark.parametrize("arguments", [[], ["only-one.npz"], ["a.npz", "b.npz"], ["a.txt", "b.keras"]])
def test_cli_usage_errors_exit_2(arguments):
    with pytest.raises(SystemExit) as exit_info:
        export.main(arguments)
    assert exit_info.value.code == 2


def test_import_keras_cli_refuses_the_export_direction(saved_model, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        export.main([str(saved_model), str(tmp_path / "x.keras")], direction="import")
    assert exit_info.value.code == 2
