"""Tests of scratchnet.initializers: bounds and statistics of each distribution, configs, rng handling."""

import json
import math

import numpy as np
import pytest

from scratchnet import initializers


def sample(name_or_obj, shape, dtype="float64", seed=0):
    return initializers.get(name_or_obj)(shape, dtype, np.random.default_rng(seed))


def test_truncated_normal_stays_within_two_stddev_and_is_not_rescaled():
    values = sample(initializers.truncated_normal(mean=0.5, stddev=0.1), (200_000,))
    assert values.min() >= 0.5 - 0.2 and values.max() <= 0.5 + 0.2
    assert values.mean() == pytest.approx(0.5, abs=1e-3)
    # a unit normal truncated at +-2 has stddev 0.8796; no rescaling keeps it below the nominal 0.1
    assert values.std() == pytest.approx(0.1 * initializers.TRUNCATED_NORMAL_STDDEV, rel=0.01)


def test_glorot_uniform_limit_uses_both_fans_and_the_receptive_field():
    shape = (5, 5, 16, 32)
    limit = math.sqrt(6 / (5 * 5 * 16 + 5 * 5 * 32))
    values = sample("glorot_uniform", shape)
    assert np.abs(values).max() <= limit
    assert np.abs(values).max() > 0.99 * limit
    assert values.std() == pytest.approx(limit / math.sqrt(3), rel=0.02)


def test_variance_scaling_truncated_normal_reaches_the_target_stddev():
    values = sample(initializers.VarianceScaling(scale=2.0, mode="fan_in"), (400, 300))
    target = math.sqrt(2.0 / 400)
    assert values.std() == pytest.approx(target, rel=0.01)
    assert np.abs(values).max() <= 2 * target / initializers.TRUNCATED_NORMAL_STDDEV


@pytest.mark.parametrize("mode, fan", [("fan_in", 100), ("fan_out", 300), ("fan_avg", 200)])
def test_variance_scaling_modes_choose_the_fan(mode, fan):
    values = sample(initializers.VarianceScaling(mode=mode, distribution="uniform"), (100, 300))
    assert np.abs(values).max() <= math.sqrt(3 / fan)
    assert values.std() == pytest.approx(math.sqrt(1 / fan), rel=0.02)


def test_he_normal_has_stddev_sqrt_2_over_fan_in():
    assert sample("he_normal", (500, 400)).std() == pytest.approx(math.sqrt(2 / 500), rel=0.01)


def test_random_normal_and_uniform_match_their_arguments():
    normal = sample(initializers.random_normal(mean=1.0, stddev=0.5), (100_000,))
    uniform = sample(initializers.random_uniform(minval=-0.2, maxval=0.6), (100_000,))
    assert normal.mean() == pytest.approx(1.0, abs=0.01) and normal.std() == pytest.approx(0.5, rel=0.01)
    assert uniform.min() >= -0.2 and uniform.max() < 0.6 and uniform.mean() == pytest.approx(0.2, abs=0.01)


def test_constant_zeros_and_ones_need_no_rng():
    assert np.array_equal(initializers.constant(0.1)((3,), "float32"), np.full(3, 0.1, np.float32))
    assert not initializers.get("zeros")((2, 2)).any()
    assert initializers.get("ones")((2,), "float64").tolist() == [1.0, 1.0]


def test_random_initializers_require_an_explicit_generator():
    with pytest.raises(TypeError, match="rng"):
        initializers.get("glorot_uniform")((3, 3), "float32", None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_has_the_requested_dtype_and_same_seed_gives_same_values(dtype):
    for name in ["glorot_uniform", "truncated_normal", "variance_scaling", "he_uniform", "zeros"]:
        first, second = sample(name, (4, 5), dtype, seed=3), sample(name, (4, 5), dtype, seed=3)
        assert first.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(first, second)


def test_compute_fans_follows_keras():
    assert initializers.compute_fans((784, 50)) == (784, 50)
    assert initializers.compute_fans((5, 5, 1, 32)) == (25, 800)
    assert initializers.compute_fans((10,)) == (10, 10)


@pytest.mark.parametrize("initializer", [
    initializers.Zeros(), initializers.Constant(0.1), initializers.TruncatedNormal(stddev=0.1),
    initializers.VarianceScaling(2.0, "fan_avg", "uniform"), initializers.GlorotUniform(),
    initializers.RandomUniform(-1, 1), initializers.HeNormal(),
])
def test_config_round_trip_through_json(initializer):
    config = json.loads(json.dumps(initializers.serialize(initializer)))
    clone = initializers.deserialize(config)
    assert type(clone) is type(initializer) and clone.get_config() == initializer.get_config()
    np.testing.assert_array_equal(sample(clone, (3, 4)), sample(initializer, (3, 4)))


@pytest.mark.parametrize("make, message", [
    (lambda: initializers.get("glorot"), "glorot"),
    (lambda: initializers.VarianceScaling(mode="fan_max"), "mode"),
    (lambda: initializers.VarianceScaling(distribution="cauchy"), "distribution"),
    (lambda: initializers.VarianceScaling(scale=0), "scale"),
])
def test_bad_arguments_raise_value_errors_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()
