"""Tests of scratchnet.optimizers: Keras's exact update formulas, written out by hand, step by step."""

import math

import numpy as np
import pytest

from scratchnet import optimizers

GRADS = [np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.3, -0.7]), np.array([-2.0, 0.0, 1.5])]
START = np.array([1.0, -2.0, 0.5])


def run(optimizer, dtype="float64", steps=3):
    weight = START.astype(dtype)
    history = []
    for grad in GRADS[:steps]:
        optimizer.apply([weight], [grad.astype(dtype)])
        history.append(weight.copy())
    return history


def test_sgd_without_momentum_is_plain_gradient_descent():
    history = run(optimizers.SGD(learning_rate=0.1))
    expected = START.copy()
    for grad, got in zip(GRADS, history):
        expected = expected - 0.1 * grad
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_with_momentum_matches_keras_velocity_update(nesterov):
    history = run(optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=nesterov))
    momentum = float(np.float32(0.9))  # Keras casts the momentum through a float32 tensor
    weight, velocity = START.copy(), np.zeros(3)
    for grad, got in zip(GRADS, history):
        velocity = velocity * momentum - grad * 0.1
        weight = weight + (velocity * momentum - grad * 0.1 if nesterov else velocity)
        np.testing.assert_allclose(got, weight, rtol=0, atol=1e-15)


def test_adam_matches_keras_form_for_three_steps():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    history = run(optimizers.Adam(learning_rate=lr))
    # Keras takes the powers of the betas cast through float32 tensors (checked against Keras 3.15).
    b1_power_base, b2_power_base = float(np.float32(b1)), float(np.float32(b2))
    weight, m, v = START.copy(), np.zeros(3), np.zeros(3)
    for t, (grad, got) in enumerate(zip(GRADS, history), start=1):
        alpha = lr * math.sqrt(1 - b2_power_base**t) / (1 - b1_power_base**t)
        m = m + (grad - m) * (1 - b1)
        v = v + (grad * grad - v) * (1 - b2)
        weight = weight - m * alpha / (np.sqrt(v) + eps)
        np.testing.assert_allclose(got, weight, rtol=1e-14, atol=1e-15)


def test_adam_first_step_moves_each_weight_by_about_the_learning_rate():
    (after,) = run(optimizers.Adam(learning_rate=0.001), steps=1)
    np.testing.assert_allclose(np.abs(after - START), 0.001, rtol=1e-3)


def test_adam_epsilon_is_added_after_the_bias_correction_not_to_v_hat():
    # With a tiny gradient the difference between Keras's and the paper's forms is visible.
    weight = np.array([0.0])
    optimizers.Adam(learning_rate=1.0, epsilon=1e-3).apply([weight], [np.array([1e-3])])
    alpha = math.sqrt(1 - float(np.float32(0.999))) / (1 - float(np.float32(0.9)))
    keras = -(0.1 * 1e-3) * alpha / (math.sqrt(0.001 * 1e-6) + 1e-3)
    assert weight[0] == pytest.approx(keras, rel=1e-12)


@pytest.mark.parametrize("make", [lambda: optimizers.Adam(), lambda: optimizers.SGD(0.1, momentum=0.5),
                                  lambda: optimizers.SGD(0.1)])
def test_float32_parameters_and_state_stay_float32(make):
    optimizer = make()
    history = run(optimizer, dtype="float32")
    assert all(w.dtype == np.float32 for w in history)
    assert all(s.dtype == np.float32 for s in optimizer.get_state())
    reference = run(make(), dtype="float64")
    np.testing.assert_allclose(history[-1], reference[-1], rtol=1e-5)


def test_updates_are_in_place_and_count_iterations():
    weight = START.copy()
    optimizer = optimizers.Adam()
    same = weight
    optimizer.apply([weight], [GRADS[0]])
    optimizer.apply([weight], [GRADS[1]])
    assert same is weight and not np.array_equal(weight, START)
    assert optimizer.iterations == 2


def test_state_can_be_restored_and_continues_identically():
    first = optimizers.Adam(learning_rate=0.1)
    weight = START.copy()
    first.apply([weight], [GRADS[0]])
    second = optimizers.Adam(learning_rate=0.1)
    copy = weight.copy()
    second.set_state(first.get_state(), [copy], first.iterations)
    first.apply([weight], [GRADS[1]])
    second.apply([copy], [GRADS[1]])
    np.testing.assert_array_equal(weight, copy)


@pytest.mark.parametrize("optimizer", [
    optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    optimizers.Adam(1e-4, beta_1=0.8, epsilon=1e-8),
    optimizers.AdamW(1e-3, weight_decay=0.01),
    optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True, weight_decay=0.1),
    optimizers.Adam(optimizers.schedules.ExponentialDecay(0.1, 100, 0.96, staircase=True)),
    optimizers.SGD(optimizers.schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001])),
    optimizers.RMSprop(optimizers.schedules.CosineDecay(0.1, 100, alpha=0.1, warmup_target=0.2, warmup_steps=5)),
])
def test_config_round_trip(optimizer):
    clone = optimizers.deserialize(optimizers.serialize(optimizer))
    assert type(clone) is type(optimizer) and clone.get_config() == optimizer.get_config()


def test_get_accepts_keras_names_with_keras_defaults():
    adam, sgd = optimizers.get("adam"), optimizers.get("SGD")
    assert adam.get_config() == {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    assert sgd.get_config() == {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}


@pytest.mark.parametrize("make, message", [
    (lambda: optimizers.SGD(learning_rate=0), "learning_rate"),
    (lambda: optimizers.SGD(momentum=1.5), "momentum"),
    (lambda: optimizers.Adam(beta_1=1.0), "beta_1"),
    (lambda: optimizers.get("adagrad"), "adagrad"),
    (lambda: optimizers.RMSprop(rho=1.0), "rho"),
    (lambda: optimizers.AdamW(weight_decay=None), "weight_decay"),
    (lambda: optimizers.Adam(weight_decay=-0.1), "weight_decay"),
    (lambda: optimizers.schedules.ExponentialDecay(0.1, 0, 0.9), "decay_steps"),
    (lambda: optimizers.schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01]), "boundaries"),
    (lambda: optimizers.Adam(amsgrad=True), "amsgrad"),
])
def test_bad_arguments_raise_value_errors_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("sliced", [False, True], ids=["whole", "sliced_over_threads"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_fused_kernel_equals_the_numpy_update_bit_for_bit(dtype, sliced, monkeypatch):
    """The numba backend's one-pass Adam (scratchnet.kernels.optimizers) repeats the NumPy update exactly."""
    from scratchnet import engine
    from scratchnet.kernels import optimizers as kernel_optimizers
    from scratchnet.runtime import threads

    if sliced:  # every parameter split over two worker threads
        monkeypatch.setattr(kernel_optimizers, "PARALLEL_MIN_SIZE", 1)
        previous = threads.num_threads()
        threads.configure(num_threads=2)

    rng = np.random.default_rng(3)
    start = [rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in start] for _ in range(4)]
    results = {}
    for backend in ("numpy", "numba"):
        params = [p.copy() for p in start]
        optimizer = optimizers.Adam(learning_rate=0.01)
        with engine.backend(backend):
            for step_grads in grads:
                optimizer.apply(params, step_grads)
        results[backend] = params + optimizer.get_state()
    if sliced:
        threads.configure(num_threads=previous)
    for fused, reference in zip(results["numba"], results["numpy"]):
        assert fused.dtype == reference.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(fused, reference)


def test_adam_fused_kernel_gives_arrays_it_cannot_take_to_the_reference_update():
    from scratchnet.kernels.optimizers import adam_update
    from scratchnet.ops.updates import adam_update as reference_update

    def arrays(dtype, strided):
        if strided:  # not contiguous: a flat view would be a copy
            p, m, v = (np.ones((4, 6), dtype)[:, ::2] for _ in range(3))
        else:
            p, m, v = (np.ones(3, dtype) for _ in range(3))
        p[...] = np.linspace(0.5, 1.5, p.size).reshape(p.shape)
        m[...], v[...] = 0, 0
        return p, m, v

    for dtype, strided in ((np.float64, True), (np.float16, False)):  # float16: numba has no arithmetic for it
        results = []
        for update in (adam_update, reference_update):
            p, m, v = arrays(dtype, strided)
            before = p.copy()
            scalars = (np.dtype(dtype).type(s) for s in (0.1, 0.1, 1e-3, 1e-7))
            assert update(p, np.ones_like(p), m, v, *scalars) is None
            assert not np.array_equal(p, before)  # the update happened
            results.append((p, m, v))
        for got, want in zip(*results):
            np.testing.assert_array_equal(got, want)


# --- RMSprop, AdamW, weight decay, learning-rate schedules --------------------------------------------


@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_matches_keras_form_for_three_steps(momentum, centered):
    lr, rho, eps = 0.01, 0.9, 1e-7
    history = run(optimizers.RMSprop(learning_rate=lr, rho=rho, momentum=momentum, centered=centered))
    weight, velocity, average, buffer = START.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    for grad, got in zip(GRADS, history):
        velocity = rho * velocity + (1 - rho) * grad * grad
        if centered:
            average = rho * average + (1 - rho) * grad
            step = lr * grad / np.sqrt(velocity - average * average + eps)  # epsilon INSIDE the root
        else:
            step = lr * grad / np.sqrt(velocity + eps)
        buffer = momentum * buffer + step
        weight = weight - (buffer if momentum else step)
        np.testing.assert_allclose(got, weight, rtol=1e-14, atol=1e-15)


def test_adamw_decays_every_weight_by_lr_times_decay_before_adams_step():
    lr, wd = 0.01, 0.004
    history = run(optimizers.AdamW(learning_rate=lr))
    adam_only = run(optimizers.Adam(learning_rate=lr), steps=1)[0]
    decay = float(np.float32(wd))  # Keras casts weight_decay through float32
    np.testing.assert_allclose(history[0], adam_only - START * decay * lr, rtol=1e-14)
    assert optimizers.get("adamw").get_config()["weight_decay"] == 0.004


def test_weight_decay_works_with_every_optimizer_and_a_schedule():
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    history = run(optimizers.SGD(learning_rate=schedule, weight_decay=0.1), steps=2)
    decay = float(np.float32(0.1))
    weight = START.copy()
    for step, (grad, got) in enumerate(zip(GRADS, history)):
        rate = float(np.float32(0.1) * np.float32(0.5) ** np.float32(step))
        weight = weight - weight * decay * rate
        weight = weight - grad * rate
        np.testing.assert_allclose(got, weight, rtol=1e-14)


def test_exponential_decay_values_and_staircase():
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert schedule(0) == pytest.approx(0.1) and schedule(10) == pytest.approx(0.05) and schedule(5) == pytest.approx(
        0.1 * 0.5**0.5, rel=1e-6)
    staircase = optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert staircase(9) == pytest.approx(0.1) and staircase(10) == pytest.approx(0.05)
    assert schedule(3).dtype == np.float32  # Keras computes schedules in float32


def test_piecewise_constant_decay_switches_after_each_boundary():
    schedule = optimizers.schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [float(schedule(s)) for s in (0, 10, 11, 20, 21, 1000)] == [1.0, 1.0, 0.5, 0.5, pytest.approx(0.1),
                                                                       pytest.approx(0.1)]


def test_cosine_decay_with_and_without_warmup():
    schedule = optimizers.schedules.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert schedule(0) == pytest.approx(1.0) and schedule(50) == pytest.approx(0.55, rel=1e-6)
    assert schedule(100) == pytest.approx(0.1, rel=1e-6) and schedule(500) == pytest.approx(0.1, rel=1e-6)
    warm = optimizers.schedules.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=10)
    assert warm(5) == pytest.approx(0.5) and warm(10) == pytest.approx(1.0) and warm(20) == pytest.approx(0.0, abs=1e-7)


def test_a_schedule_is_read_at_the_number_of_updates_done():
    schedule = optimizers.schedules.PiecewiseConstantDecay([1], [0.5, 0.25])
    optimizer = optimizers.SGD(learning_rate=schedule)
    assert optimizer.learning_rate == 0.5
    weight = np.array([1.0])
    rates = []
    for _ in range(3):
        rates.append(optimizer.learning_rate)
        optimizer.apply([weight], [np.array([1.0])])
    assert rates == [0.5, 0.5, 0.25]  # steps 0 and 1 are <= the boundary 1, as in Keras
    np.testing.assert_allclose(weight, [1.0 - 0.5 - 0.5 - 0.25])


def test_learning_rate_is_settable_unless_it_is_a_schedule():
    optimizer = optimizers.Adam()
    optimizer.learning_rate = 0.01
    assert optimizer.learning_rate == 0.01 and optimizer.get_config()["learning_rate"] == 0.01
    with pytest.raises(ValueError, match="learning_rate"):
        optimizer.learning_rate = -1.0
    scheduled = optimizers.Adam(optimizers.schedules.CosineDecay(0.1, 10))
    with pytest.raises(TypeError, match="not settable"):
        scheduled.learning_rate = 0.01


@pytest.mark.parametrize("make", [lambda: optimizers.RMSprop(momentum=0.5, centered=True), lambda: optimizers.AdamW()])
def test_new_optimizers_keep_float32_and_restore_their_state(make):
    optimizer = make()
    weight = START.astype(np.float32)
    for grad in GRADS[:2]:
        optimizer.apply([weight], [grad.astype(np.float32)])
    assert weight.dtype == np.float32 and all(s.dtype == np.float32 for s in optimizer.get_state())
    clone = make()
    clone_weight = weight.copy()
    clone.set_state(optimizer.get_state(), [clone_weight], optimizer.iterations)
    optimizer.apply([weight], [GRADS[2].astype(np.float32)])
    clone.apply([clone_weight], [GRADS[2].astype(np.float32)])
    np.testing.assert_array_equal(weight, clone_weight)
