"""Tests of scratchnet.models.saving: one .npz file round-trips a model; bad files give clear errors."""

import json
import os

import numpy as np
import pytest

from scratchnet import layers, optimizers
from scratchnet.models import Sequential, load_model


def cnn(dtype="float32"):
    model = Sequential([
        layers.Conv2D(4, 3, strides=2, activation="relu", kernel_initializer="variance_scaling",
                      input_shape=(8, 8, 1)),
        layers.MaxPooling2D(2, padding="same"), layers.BiasAdd(bias_initializer="ones"),
        layers.Flatten(), layers.Dropout(0.25), layers.Dense(3, activation="softmax"),
    ], dtype=dtype, seed=4, name="tiny_cnn")
    model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def data(n=16):
    rng = np.random.default_rng(1)
    return rng.random((n, 8, 8, 1)), rng.integers(0, 3, n)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_then_load_gives_identical_predictions_config_and_dtype(tmp_path, dtype):
    x, y = data()
    model = cnn(dtype)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_config() == model.get_config()
    assert loaded.get_compile_config() == model.get_compile_config()
    assert loaded.dtype == dtype and {w.dtype for w in loaded.get_weights()} == {np.dtype(dtype)}
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_loaded_model_resumes_training_exactly_with_the_optimizer_state(tmp_path):
    x, y = data()
    model = cnn()
    model.layers[4].rate = 0.0  # no dropout, so both copies see the same computation
    model.train_step(x, y)
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.optimizer.iterations == 1
    model.train_step(x, y)
    loaded.layers[4].rate = 0.0
    loaded.train_step(x, y)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_file_is_a_plain_npz_readable_without_pickle_and_named_as_given(tmp_path):
    path = tmp_path / "weights.model"
    cnn().save(path)
    assert os.listdir(tmp_path) == ["weights.model"]  # no ".npz" appended, no temporary left behind
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["config"][()]))
        assert header["format"] == "scratchnet" and header["format_version"] == 1
        assert archive["weight_000"].shape == (3, 3, 1, 4)


def test_saving_over_an_existing_file_replaces_it(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    cnn().save(path)
    assert load_model(path).name == "tiny_cnn"


def test_truncated_file_raises_a_value_error_naming_the_file(tmp_path):
    path = tmp_path / "m.npz"
    cnn().save(path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match=r"m\.npz.*not a valid scratchnet model file"):
        load_model(path)


@pytest.mark.parametrize("content", [b"<html>not a model</html>", b""])
def test_non_npz_file_raises_a_value_error_naming_the_file(tmp_path, content):
    path = tmp_path / "page.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"page\.npz"):
        load_model(path)


def test_npz_without_a_scratchnet_config_is_rejected(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match=r"other\.npz.*no 'config'"):
        load_model(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.npz"):
        load_model(tmp_path / "nothing.npz")


def test_uncompiled_model_saves_and_loads_without_optimizer(tmp_path):
    model = Sequential([layers.Dense(2, input_shape=(3,))])
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.optimizer is None
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


# ----------------------------------------------------------------------------------------------
# Keras 3's files, without TensorFlow: .keras archives and .weights.h5
# ----------------------------------------------------------------------------------------------


def keras_ready(dtype="float32"):
    """cnn() without its BiasAdd (which Keras lacks)."""
    model = Sequential([
        layers.Conv2D(4, 3, strides=2, activation="relu", input_shape=(8, 8, 1)),
        layers.MaxPooling2D(2, padding="same"), layers.Flatten(), layers.Dropout(0.25),
        layers.Dense(3, activation="softmax"),
    ], dtype=dtype, seed=4, name="tiny_cnn")
    model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_archive_round_trips_weights_compile_settings_and_optimizer_state(tmp_path, dtype):
    import zipfile

    x, y = data()
    model = keras_ready(dtype)
    model.layers[3].rate = 0.0
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "tiny.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    assert [layer["class_name"] for layer in config["config"]["layers"]] == [
        "InputLayer", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense"]
    loaded = load_model(path)
    assert loaded.dtype == dtype and loaded.name == "tiny_cnn" and loaded.input_shape == (None, 8, 8, 1)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.metrics_names == ["loss", "accuracy"] and loaded.optimizer.iterations == 4
    loaded.layers[3].rate = 0.0
    model.train_step(x, y)
    loaded.train_step(x, y)  # resumes exactly: the Adam moments came back with the weights
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_frozen_layers_and_an_uncompiled_model_round_trip_through_keras_archives(tmp_path):
    model = Sequential([layers.Dense(3, activation="relu", input_shape=(5,)), layers.Dense(2)])
    model.layers[0].trainable = False
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.optimizer is None and [layer.trainable for layer in loaded.layers] == [False, True]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_layer_keras_lacks_fails_the_keras_save_without_leaving_a_file(tmp_path):
    with pytest.raises(ValueError, match=r"layer 'bias_add' \(BiasAdd\) has no Keras counterpart.*\.npz"):
        cnn().save(tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match=r"does not write HDF5 model files.*\.keras"):
        cnn().save(tmp_path / "m.h5")


def rewrite_config(path, change):
    """Rewrite a .keras archive's config.json through `change(config)`."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def test_loading_a_keras_file_names_the_first_layer_scratchnet_lacks(tmp_path):
    path = tmp_path / "m.keras"
    keras_ready().save(path)

    def add_unknown(config):
        layers_config = config["config"]["layers"]
        layers_config.insert(2, {"module": "keras.layers", "class_name": "LSTM", "config": {"name": "lstm"}})
        layers_config.insert(3, {"module": "keras.layers", "class_name": "GRU", "config": {"name": "gru"}})

    rewrite_config(path, add_unknown)
    with pytest.raises(ValueError, match=r"layer 'lstm' \(LSTM\) is not supported by scratchnet, which has Dense"):
        load_model(path)


def test_loading_a_keras_layer_option_scratchnet_lacks_names_it(tmp_path):
    path = tmp_path / "m.keras"
    keras_ready().save(path)

    def dilate(config):
        config["config"]["layers"][1]["config"]["dilation_rate"] = [2, 2]

    rewrite_config(path, dilate)
    with pytest.raises(ValueError, match=r"conv2d.*dilation_rate=\[2, 2\].*not support"):
        load_model(path)


def test_a_functional_keras_model_is_refused_pointing_to_sequential(tmp_path):
    path = tmp_path / "m.keras"
    keras_ready().save(path)
    rewrite_config(path, lambda config: config.update(class_name="Functional"))
    with pytest.raises(ValueError, match=r"Keras Functional model.*out of scope.*Sequential"):
        load_model(path)


def test_a_compile_setting_scratchnet_lacks_loads_the_model_uncompiled_with_a_warning(tmp_path):
    path = tmp_path / "m.keras"
    keras_ready().save(path)

    def amsgrad(config):
        config["compile_config"]["optimizer"]["config"]["amsgrad"] = True

    rewrite_config(path, amsgrad)
    with pytest.warns(UserWarning, match="uncompiled.*amsgrad"):
        loaded = load_model(path)
    assert loaded.optimizer is None and loaded.predict(data()[0], verbose=0).shape == (16, 3)


def test_a_file_that_is_neither_format_gets_a_clear_error(tmp_path):
    import zipfile

    zipped = tmp_path / "notes.keras"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"notes\.keras.*not a valid scratchnet model file.*no 'config'"):
        load_model(zipped)
    text = tmp_path / "model.keras"
    text.write_text("not a model")
    with pytest.raises(ValueError, match=r"model\.keras.*neither an \.npz archive nor a Keras \.keras archive"):
        load_model(text)
    weights = tmp_path / "w.weights.h5"
    keras_ready().save_weights(weights)
    with pytest.raises(ValueError, match=r"HDF5 file .*load_weights"):
        load_model(weights)


@pytest.mark.parametrize("name", ["w.weights.h5", "w.npz"])
def test_save_weights_and_load_weights_round_trip(tmp_path, name):
    x, y = data()
    model = keras_ready()
    model.fit(x, y, verbose=0)
    model.save_weights(tmp_path / name)
    fresh = keras_ready()
    fresh.load_weights(tmp_path / name)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(FileExistsError):
        model.save_weights(tmp_path / name, overwrite=False)


def test_load_weights_checks_shapes_and_can_skip_mismatches(tmp_path):
    model = keras_ready()
    model.save_weights(tmp_path / "w.weights.h5")
    model.save_weights(tmp_path / "w.npz")
    other = Sequential([layers.Conv2D(4, 3, strides=2, activation="relu", input_shape=(8, 8, 1)),
                        layers.MaxPooling2D(2, padding="same"), layers.Flatten(), layers.Dropout(0.25),
                        layers.Dense(5, activation="softmax")])
    for name in ("w.weights.h5", "w.npz"):
        with pytest.raises(ValueError, match=r"kernel has shape \(16, 5\).*\(16, 3\)"):
            other.load_weights(tmp_path / name)
    with pytest.warns(UserWarning, match="Skipping"):
        other.load_weights(tmp_path / "w.weights.h5", skip_mismatch=True)
    np.testing.assert_array_equal(other.layers[0].params["kernel"], model.layers[0].params["kernel"])
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`.*or `\.npz`"):
        model.save_weights(tmp_path / "w.h5")


def test_load_weights_reads_the_weights_of_model_files(tmp_path):
    x, _ = data()
    model = keras_ready()
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.npz")
    for name in ("m.keras", "m.npz"):
        fresh = keras_ready()
        fresh.layers[0].params["kernel"][...] = 0
        fresh.load_weights(tmp_path / name)
        np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_keras_saving_module_is_reachable_as_in_keras(tmp_path):
    import scratchnet as keras

    model = keras_ready()
    keras.saving.save_model(model, tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").count_params() == model.count_params()
    assert keras.models.load_model is load_model


def test_unbuilt_model_cannot_be_saved_and_leaves_no_file(tmp_path):
    model = Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="not built yet"):
        model.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_file_naming_an_unknown_model_class_is_rejected(tmp_path):
    path = tmp_path / "m.npz"
    cnn().save(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(str(arrays["config"][()]))
    header["class_name"] = "Functional"
    arrays["config"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"m\.npz.*class_name 'Functional' is none of Sequential"):
        load_model(path)


def test_only_a_registered_model_class_can_be_saved(tmp_path):
    class Custom(Sequential):
        pass

    model = Custom([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(TypeError, match=r"registered model class.*received Custom"):
        model.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []
