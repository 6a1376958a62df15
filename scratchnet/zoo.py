"""The model zoo: the seven handwriting models of the classic documents, exactly as MODELS.md specifies them.

``build(name)`` returns a compiled ``Sequential`` with the source's architecture, initialisation, layer order,
optimizer and loss; ``defaults(name)`` returns the source's training recipe (dataset, batch size, epochs or
steps, learning rate, preprocessing), which ``python -m scratchnet.train --model NAME`` follows.

Every builder's docstring names its source and what the source reported. "Reported" figures are targets to
meet on the same data, never numbers the code knows.
"""

from dataclasses import dataclass, field, replace

from scratchnet import initializers, layers, optimizers
from scratchnet.models import Sequential

NAMES = ("logreg", "softmax", "mlp", "notmnist_cnn", "emnist_cnn", "kaggle_cnn", "deep_mnist")


@dataclass(frozen=True)
class Recipe:
    """How the source trained a model.

    ``schedule`` is "epochs" (Keras ``fit``: shuffled epochs, validation after each), "steps" (a fixed number
    of mini-batch steps, the TF1 style, reporting every ``report_every`` steps) or "full_batch" (gradient
    descent on the whole training set, one printed loss per iteration). ``batch_order`` is "shuffle" (a new
    permutation each pass) or "sequential" (notMNIST's ``offset = step * batch % (n - batch)``).
    ``preprocess`` names how uint8 pixels become inputs: "unit" (v / 255), "centered" ((v - 127.5) / 255),
    "raw_bias" (raw 0..255 values with a column of ones in front, logreg's form).
    ``validation`` is where validation data comes from: "split" (the LAST ``validation_split`` of the
    training set, as Keras takes it), "head" (the FIRST 5,000 training images, as TensorFlow 1's
    ``input_data.read_data_sets`` took them, leaving 55,000 to train on), "test" (the test set, as the
    EMNIST source did), "dataset" (the dataset's own validation set, e.g. notMNIST's) or "none".
    """

    dataset: str
    optimizer: str
    learning_rate: float
    batch_size: int | None
    epochs: int | None = None
    steps: int | None = None
    schedule: str = "epochs"
    batch_order: str = "shuffle"
    report_every: int = 100
    preprocess: str = "unit"
    flat: bool = False
    validation: str = "split"
    validation_split: float = 0.1
    dtype: str = "float32"
    reported: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)

    def replace(self, **changes):
        """A copy with some fields changed (``None`` values are ignored, so CLI flags can be passed as-is)."""
        return replace(self, **{key: value for key, value in changes.items() if value is not None})


_RECIPES = {
    "logreg": Recipe(
        dataset="mnist", optimizer="sgd", learning_rate=1e-5, batch_size=None, steps=200,
        schedule="full_batch", preprocess="raw_bias", flat=True, dtype="float64", validation="none",
        reported="loss ln 2 at iteration 0, about 0.069 by iteration 195; first ten test predictions right",
        source="binary logistic regression from scratch ('is this digit a 4?'), NumPy",
    ),
    "softmax": Recipe(
        dataset="mnist", optimizer="sgd", learning_rate=0.5, batch_size=100, steps=1000, schedule="steps",
        flat=True, validation="head", reported="about 92% test accuracy",
        source="TensorFlow 'MNIST for ML beginners' softmax regression",
    ),
    "mlp": Recipe(
        dataset="mnist", optimizer="adam", learning_rate=1e-3, batch_size=100, epochs=5,
        reported="test accuracy 97.3%, test loss 0.08",
        source="Keras two-hidden-layer MLP (Flatten, Dense 50, Dense 50, Dense 10)",
    ),
    "notmnist_cnn": Recipe(
        dataset="notmnist", optimizer="sgd", learning_rate=0.05, batch_size=16, steps=1001,
        schedule="steps", batch_order="sequential", preprocess="centered", validation="dataset",
        reported="about 92% test accuracy (8% error) after minutes on a CPU",
        source="Udacity deep-learning assignment 4 (notMNIST), TensorFlow 1 convolutional network",
    ),
    "emnist_cnn": Recipe(
        dataset="emnist-byclass", optimizer="adam", learning_rate=1e-3, batch_size=1024, epochs=50,
        validation="test", reported="test accuracy 87.2%, test loss 0.342 (EMNIST ByClass)",
        source="Keras EMNIST ByClass CNN (strided conv + dropout)",
    ),
    "kaggle_cnn": Recipe(
        dataset="kaggle", optimizer="adam", learning_rate=1e-3, batch_size=32, epochs=10,
        validation="dataset", reported="validation accuracy 98.9%, validation loss 0.045",
        source="Kaggle digit-recognizer Keras CNN",
    ),
    "deep_mnist": Recipe(
        dataset="mnist", optimizer="adam", learning_rate=1e-4, batch_size=50, steps=20000, schedule="steps",
        validation="head", reported="about 99.2% test accuracy",
        source="TensorFlow 'Deep MNIST for experts'",
    ),
}


def defaults(name):
    """The training recipe of model ``name`` as its source ran it (a frozen ``Recipe``)."""
    _check_name(name)
    return _RECIPES[name]


def build(name, *, seed=0, dtype=None, num_classes=None, learning_rate=None):
    """Build model ``name`` with its source's architecture and initialisation, compiled with its optimizer.

    ``dtype`` defaults to the recipe's ("float64" for logreg, "float32" for the rest); ``num_classes``
    defaults to 10 (62 for emnist_cnn, EMNIST ByClass); ``learning_rate`` overrides the recipe's.
    """
    _check_name(name)
    recipe = _RECIPES[name]
    dtype = dtype or recipe.dtype
    learning_rate = recipe.learning_rate if learning_rate is None else learning_rate
    if num_classes is None:
        num_classes = 62 if name == "emnist_cnn" else 10
    if not (isinstance(num_classes, int) and num_classes >= 2):
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")

    input_shape, layer_list = globals()[f"_build_{name}"](num_classes)
    model = Sequential(layer_list, input_shape=input_shape, dtype=dtype, seed=seed, name=name)
    optimizer = (optimizers.SGD(learning_rate=learning_rate) if recipe.optimizer == "sgd"
                 else optimizers.Adam(learning_rate=learning_rate))
    loss = "binary_crossentropy" if name == "logreg" else "sparse_categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def _check_name(name):
    if name not in _RECIPES:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(NAMES)}")


def _truncated_normal_01():
    return initializers.TruncatedNormal(mean=0.0, stddev=0.1)


def _build_logreg(num_classes):
    """``logreg``: (binary: ``num_classes`` is ignored) p = sigmoid(X @ w), X the 784 raw pixels with a ones
    column in front (785), w zeros.

    Source: a from-scratch NumPy logistic regression deciding "is this digit a 4?", trained by 200 full-batch
    gradient-descent steps at 1e-5. Reported: loss ln 2 at iteration 0, about 0.069 at iteration 195, and the
    first ten test predictions equal to the labels. The bias lives in the ones column, so the layer has none.
    """
    return (785,), [
        layers.Dense(1, use_bias=False, activation="sigmoid", kernel_initializer="zeros"),
    ]


def _build_softmax(num_classes):
    """``softmax``: logits = x @ W + b with W, b zeros; softmax cross-entropy; gradient descent at 0.5.

    Source: TensorFlow's "MNIST for ML beginners" (1,000 steps of 100). Reported: about 92% test accuracy.
    """
    return (784,), [
        layers.Dense(num_classes, activation="softmax", kernel_initializer="zeros"),
    ]


def _build_mlp(num_classes):
    """``mlp``: Flatten -> Dense(50, relu) -> Dense(50, relu) -> Dense(10, softmax), Keras default init.

    Source: a Keras MLP trained with Adam for 5 epochs of 100 with 10% held out. Reported: test accuracy
    97.3%, test loss 0.08. 42,310 parameters.
    """
    return (28, 28, 1), [
        layers.Flatten(),
        layers.Dense(50, activation="relu"),
        layers.Dense(50, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ]


def _build_notmnist_cnn(num_classes):
    """``notmnist_cnn``: two 5x5 SAME convs with 2x2 SAME max-pooling, then dense 64, then logits.

    Source: Udacity's deep-learning assignment 4 on notMNIST (TensorFlow 1). The bias of each conv is added
    AFTER pooling (conv -> pool -> + bias -> relu), so the convs have no bias of their own and a ``BiasAdd``
    follows the pooling. Weights truncated normal stddev 0.1 (no rescaling); bias 1 zeros, the others 1.0.
    Reported: about 92% test accuracy (8% error) after 1,001 steps of 16. 57,722 parameters.
    """
    ones = initializers.Constant(1.0)
    return (28, 28, 1), [
        layers.Conv2D(16, 5, padding="same", use_bias=False, kernel_initializer=_truncated_normal_01()),
        layers.MaxPooling2D(2, padding="same"),
        layers.BiasAdd(bias_initializer="zeros"),
        layers.Activation("relu"),
        layers.Conv2D(16, 5, padding="same", use_bias=False, kernel_initializer=_truncated_normal_01()),
        layers.MaxPooling2D(2, padding="same"),
        layers.BiasAdd(bias_initializer=ones),
        layers.Activation("relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu", kernel_initializer=_truncated_normal_01(), bias_initializer=ones),
        layers.Dense(num_classes, activation="softmax", kernel_initializer=_truncated_normal_01(),
                     bias_initializer=initializers.Constant(1.0)),
    ]


def _build_emnist_cnn(num_classes):
    """``emnist_cnn``: Conv2D(32, 5, stride 2) -> Conv2D(64, 3) -> MaxPool 2 -> Dropout .25 -> Dense 128 ->
    Dropout .25 -> Dense(62, softmax); all VALID, relu, Keras default init.

    Source: a Keras CNN on EMNIST ByClass (62 classes), Adam, batch 1024, 50 epochs. Reported: test accuracy
    87.2%, loss 0.342. With ``num_classes`` it fits any dataset (10 for MNIST). 232,254 parameters (62).
    """
    return (28, 28, 1), [
        layers.Conv2D(32, 5, strides=2, activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.25),
        layers.Dense(num_classes, activation="softmax"),
    ]


def _build_kaggle_cnn(num_classes):
    """``kaggle_cnn``: Conv2D(8, 5) -> MaxPool 2 -> Conv2D(16, 5) -> MaxPool 2 -> Dense 128 -> Dropout .2 ->
    Dense(10, softmax); VarianceScaling (scale 1, fan_in, truncated normal) on the convs and the output layer.

    Source: a Kaggle digit-recognizer Keras notebook (Adam 1e-3, batch 32, 10 epochs, 80/20 split).
    Reported: validation accuracy 98.9%, validation loss 0.045. 37,610 parameters.
    """
    return (28, 28, 1), [
        layers.Conv2D(8, 5, activation="relu", kernel_initializer=initializers.VarianceScaling()),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 5, activation="relu", kernel_initializer=initializers.VarianceScaling()),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(num_classes, activation="softmax", kernel_initializer=initializers.VarianceScaling()),
    ]


def _build_deep_mnist(num_classes):
    """``deep_mnist``: conv 5x5 32 -> pool -> conv 5x5 64 -> pool -> dense 1024 -> dropout -> logits.

    Source: TensorFlow's "Deep MNIST for experts" (Adam 1e-4, 20,000 steps of 50). All SAME padding, weights
    truncated normal stddev 0.1, biases 0.1; dropout with keep probability 0.5 is Keras ``Dropout(0.5)``
    (rate = fraction dropped), off when predicting. Reported: about 99.2% test accuracy. 3,274,634 parameters.
    """
    point_one = initializers.Constant(0.1)
    return (28, 28, 1), [
        layers.Conv2D(32, 5, padding="same", activation="relu", kernel_initializer=_truncated_normal_01(),
                      bias_initializer=point_one),
        layers.MaxPooling2D(2, padding="same"),
        layers.Conv2D(64, 5, padding="same", activation="relu", kernel_initializer=_truncated_normal_01(),
                      bias_initializer=point_one),
        layers.MaxPooling2D(2, padding="same"),
        layers.Flatten(),
        layers.Dense(1024, activation="relu", kernel_initializer=_truncated_normal_01(),
                     bias_initializer=point_one),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax", kernel_initializer=_truncated_normal_01(),
                     bias_initializer=point_one),
    ]
