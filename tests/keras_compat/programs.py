"""Keras programs, each run unchanged on real Keras and on scratchnet (``import scratchnet as keras``).

Each program is a function ``program(keras, data, workdir) -> dict``: ``keras`` is the engine's module,
``data`` a slice of MNIST as ``keras.datasets.mnist.load_data()`` returns it, ``workdir`` a folder for files.
It prints what the script prints and returns what the tests compare: history keys, shapes, parameter
counts (exactly) and accuracies (within seed noise).

The first five are shortened versions of published Keras MNIST walk-throughs, written from their published
steps: fewer images and one or two epochs, the same on both engines. Lines that call TensorFlow itself
(``tf.nn.softmax``) or the Functional API are left out; a Functional model is written as the equivalent
Sequential one. ``REQUIRES`` lists the names each program needs beyond the core API.
"""

import os

import numpy as np


def simple_mnist_convnet(keras, data, workdir):
    """keras.io's "Simple MNIST convnet" (15 epochs of 60,000 images in the original)."""
    layers = keras.layers
    num_classes = 10
    input_shape = (28, 28, 1)
    (x_train, y_train), (x_test, y_test) = data
    x_train = x_train.astype("float32") / 255
    x_test = x_test.astype("float32") / 255
    x_train = np.expand_dims(x_train, -1)
    x_test = np.expand_dims(x_test, -1)
    print("x_train shape:", x_train.shape)
    print(x_train.shape[0], "train samples")
    print(x_test.shape[0], "test samples")
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)

    model = keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.summary()

    batch_size, epochs = 128, 1
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)
    score = model.evaluate(x_test, y_test, verbose=0)
    print("Test loss:", score[0])
    print("Test accuracy:", score[1])
    return {"history": sorted(history.history), "y_train": y_train.shape, "score": len(score),
            "params": model.count_params(), "accuracy": score[1]}


def tensorflow_beginner_quickstart(keras, data, workdir):
    """tensorflow.org's "TensorFlow 2 quickstart for beginners" (5 epochs of 60,000 images in the original)."""
    (x_train, y_train), (x_test, y_test) = data
    x_train, x_test = x_train / 255.0, x_test / 255.0

    model = keras.models.Sequential([
        keras.layers.Flatten(input_shape=(28, 28)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10),
    ])
    predictions = model(x_train[:1]).numpy()
    print("logits:", predictions.shape)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    print("untrained loss:", float(loss_fn(y_train[:1], predictions)))
    model.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=1)
    _, accuracy = model.evaluate(x_test, y_test, verbose=2)

    probability_model = keras.Sequential([model, keras.layers.Softmax()])
    probabilities = np.asarray(probability_model(x_test[:5]))
    return {"logits": predictions.shape, "probabilities": probabilities.shape,
            "rows_sum_to_one": bool(np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)), "accuracy": accuracy}


def getting_started_convnet(keras, data, workdir):
    """keras.io's "Introduction to Keras for engineers" convnet (20 epochs, early stopping, in the original)."""
    (x_train, y_train), (x_test, y_test) = data
    x_train = x_train.astype("float32") / 255
    x_test = x_test.astype("float32") / 255
    x_train = np.expand_dims(x_train, -1)
    x_test = np.expand_dims(x_test, -1)
    num_classes = 10
    input_shape = (28, 28, 1)

    model = keras.Sequential([
        keras.layers.Input(shape=input_shape),
        keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Conv2D(128, kernel_size=(3, 3), activation="relu"),
        keras.layers.Conv2D(128, kernel_size=(3, 3), activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.summary()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(),
                  optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])

    batch_size, epochs = 128, 1
    callbacks = [
        keras.callbacks.ModelCheckpoint(filepath=os.path.join(workdir, "model_at_epoch_{epoch}.keras")),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=2),
    ]
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.15,
                        callbacks=callbacks)
    score = model.evaluate(x_test, y_test, verbose=0)
    model.save(os.path.join(workdir, "final_model.keras"))
    model = keras.saving.load_model(os.path.join(workdir, "final_model.keras"))
    predictions = model.predict(x_test)
    return {"history": sorted(history.history), "files": sorted(os.listdir(workdir)),
            "predictions": predictions.shape, "params": model.count_params(), "accuracy": score[1]}


def sequential_model_guide(keras, data, workdir):
    """keras.io's "The Sequential model" guide, its steps applied to MNIST (its transfer-learning recipe:
    train, save the weights, reload them into a fresh model, freeze all but the last layer, fine-tune)."""
    layers = keras.layers
    model = keras.Sequential([
        layers.Dense(2, activation="relu", name="layer1"),
        layers.Dense(3, activation="relu", name="layer2"),
        layers.Dense(4, name="layer3"),
    ])
    y = model(np.ones((3, 3)))
    print("output:", tuple(y.shape), [layer.name for layer in model.layers])

    model = keras.Sequential()
    model.add(layers.Dense(2, activation="relu"))
    model.add(layers.Dense(3, activation="relu"))
    model.add(layers.Dense(4))
    model.pop()
    print("after pop:", len(model.layers))

    layer = layers.Dense(3)
    before = len(layer.weights)
    layer(np.ones((1, 4)))
    print("layer weights:", before, len(layer.weights))

    model = keras.Sequential([layers.Dense(2, activation="relu"), layers.Dense(3, activation="relu"), layers.Dense(4)])
    unbuilt = len(model.weights)
    model.build((None, 4))
    print("model weights:", unbuilt, len(model.weights))
    model.summary()

    model = keras.Sequential()
    model.add(keras.Input(shape=(28, 28, 1)))
    model.add(layers.Conv2D(16, 5, strides=2, activation="relu"))
    model.add(layers.Conv2D(16, 3, activation="relu"))
    model.add(layers.MaxPooling2D(2))
    print("feature maps:", model.output_shape)
    model.add(layers.Flatten())
    model.add(layers.Dense(10))
    print("layers:", len(model.layers), model.get_layer(index=-1).name == model.layers[-1].name)

    (x_train, y_train), (x_test, y_test) = data
    x_train = x_train.reshape(-1, 784).astype("float32") / 255
    x_test = x_test.reshape(-1, 784).astype("float32") / 255

    def mlp():
        return keras.Sequential([keras.Input(shape=(784,)), layers.Dense(32, activation="relu"),
                                 layers.Dense(32, activation="relu"), layers.Dense(10)])

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    pretrained = mlp()
    pretrained.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    pretrained.fit(x_train, y_train, batch_size=64, epochs=1, verbose=2)
    weights_file = os.path.join(workdir, "pretrained.weights.h5")
    pretrained.save_weights(weights_file)

    model = mlp()
    model.load_weights(weights_file)
    for layer in model.layers[:-1]:
        layer.trainable = False
    frozen = [layer.get_weights()[0].copy() for layer in model.layers[:-1]]
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=2)
    unchanged = all(np.array_equal(before, layer.get_weights()[0]) for before, layer in zip(frozen, model.layers))
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {"trainable": len(model.trainable_weights), "non_trainable": len(model.non_trainable_weights),
            "frozen_unchanged": unchanged, "input_shape": model.input_shape, "output_shape": model.output_shape,
            "accuracy": accuracy}


def training_and_evaluation_guide(keras, data, workdir):
    """keras.io's "Training & evaluation with the built-in methods" guide: its MNIST model (Functional there,
    the same layers as a Sequential model here), then class weights, sample weights, callbacks and a
    learning-rate schedule."""
    layers = keras.layers
    (x_train, y_train), (x_test, y_test) = data
    x_train = x_train.reshape(-1, 784).astype("float32") / 255
    x_test = x_test.reshape(-1, 784).astype("float32") / 255
    y_train = y_train.astype("float32")
    y_test = y_test.astype("float32")
    x_val, y_val = x_train[-500:], y_train[-500:]
    x_train, y_train = x_train[:-500], y_train[:-500]

    def get_uncompiled_model():
        return keras.Sequential([
            keras.Input(shape=(784,), name="digits"),
            layers.Dense(64, activation="relu", name="dense_1"),
            layers.Dense(64, activation="relu", name="dense_2"),
            layers.Dense(10, activation="softmax", name="predictions"),
        ])

    def get_compiled_model():
        model = get_uncompiled_model()
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=[keras.metrics.SparseCategoricalAccuracy()])
        return model

    model = get_compiled_model()
    print("Fit model on training data")
    history = model.fit(x_train, y_train, batch_size=64, epochs=2, validation_data=(x_val, y_val))
    print("Evaluate on test data")
    results = model.evaluate(x_test, y_test, batch_size=128)
    print("test loss, test acc:", results)
    predictions = model.predict(x_test[:3])
    print("predictions shape:", predictions.shape)

    class_weight = dict.fromkeys(range(10), 1.0)
    class_weight[5] = 2.0
    model = get_compiled_model()
    model.fit(x_train, y_train, class_weight=class_weight, batch_size=64, epochs=1)

    sample_weight = np.ones(shape=(len(y_train),))
    sample_weight[y_train == 5] = 2.0
    model = get_compiled_model()
    model.fit(x_train, y_train, sample_weight=sample_weight, batch_size=64, epochs=1)

    model = get_compiled_model()
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e-2, patience=2, verbose=1),
        keras.callbacks.ModelCheckpoint(filepath=os.path.join(workdir, "mymodel_{epoch}.keras"),
                                        save_best_only=True, monitor="val_loss", verbose=1),
    ]
    stopped = model.fit(x_train, y_train, epochs=2, batch_size=64, callbacks=callbacks, validation_split=0.2)

    lr_schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=100000, decay_rate=0.96,
                                                              staircase=True)
    model = get_uncompiled_model()
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=lr_schedule),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    scheduled = model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)
    return {"history": sorted(history.history), "results": len(results), "predictions": predictions.shape,
            "callback_history": sorted(stopped.history), "scheduled_history": sorted(scheduled.history),
            "checkpoints": len([f for f in os.listdir(workdir) if f.startswith("mymodel_")]),
            "accuracy": results[1]}


def callbacks_and_weights(keras, data, workdir):
    """Keras calls beyond the walk-throughs: the other built-in callbacks, the model's weights API, and the
    files both engines write."""
    layers = keras.layers
    (x_train, y_train), (x_test, y_test) = data
    x_train = x_train.reshape(-1, 784).astype("float32") / 255
    x_test = x_test.reshape(-1, 784).astype("float32") / 255
    model = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(32, activation="relu", name="hidden"),
                              layers.Dense(10, activation="softmax", name="out")])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    log = os.path.join(workdir, "log.csv")
    history = model.fit(x_train, y_train, batch_size=64, epochs=3, validation_split=0.1, verbose=2, callbacks=[
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=5),
        keras.callbacks.CSVLogger(log),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=5, restore_best_weights=True),
    ])
    with open(log) as file:
        header = file.readline().strip()
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    model.save(os.path.join(workdir, "model.keras"))
    reloaded = keras.models.load_model(os.path.join(workdir, "model.keras"))
    same = np.allclose(reloaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0), atol=1e-6)
    return {"history": sorted(history.history), "learning_rates": [round(r, 6) for r in
                                                                    history.history["learning_rate"]],
            "csv_header": header, "results": sorted(results), "epochs": history.epoch,
            "weights": [(w.name, tuple(w.shape)) for w in model.weights], "hidden": model.get_layer("hidden").name,
            "reloaded_predicts_the_same": bool(same), "input_shape": model.input_shape,
            "accuracy": results["accuracy"]}


PROGRAMS = {
    "simple_mnist_convnet": (simple_mnist_convnet, 3000, 1000),
    "tensorflow_beginner_quickstart": (tensorflow_beginner_quickstart, 3000, 1000),
    "getting_started_convnet": (getting_started_convnet, 1000, 300),
    "sequential_model_guide": (sequential_model_guide, 3000, 1000),
    "training_and_evaluation_guide": (training_and_evaluation_guide, 3000, 1000),
    "callbacks_and_weights": (callbacks_and_weights, 2000, 1000),
}
"""Each program with the numbers of training and test images it gets."""

REQUIRES = {
    "tensorflow_beginner_quickstart": ["layers.Softmax"],
    "getting_started_convnet": ["layers.GlobalAveragePooling2D", "metrics.SparseCategoricalAccuracy"],
    "training_and_evaluation_guide": ["optimizers.RMSprop", "metrics.SparseCategoricalAccuracy",
                                      "optimizers.schedules.ExponentialDecay"],
}
"""Names a program uses that belong to scratchnet's newer layers, metrics and optimizers."""
