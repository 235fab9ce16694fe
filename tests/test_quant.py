"""The one requantization rule: rounding corner cases and multiplier accuracy."""

import math

import numpy as np
import pytest

from sqzhw.quant import (MAX_SHIFT, add_multipliers, quantize_multiplier, requantize, round_shift,
                         wrap_int32)


def rq(acc, m, n, zp=0, relu=False):
    return int(requantize(np.array([acc], np.int32), m, n, zp, relu)[0])


def test_ties_round_toward_plus_infinity():
    # acc * M / 2**n = k + 0.5 exactly
    assert rq(3, 1, 1) == 2          # 1.5 -> 2
    assert rq(5, 1, 1) == 3          # 2.5 -> 3 (not banker's 2)
    assert rq(-3, 1, 1) == -1        # -1.5 -> -1 (toward +inf)
    assert rq(-5, 1, 1) == -2        # -2.5 -> -2
    assert rq(-1, 1, 1) == 0         # -0.5 -> 0
    assert rq(1, 1, 1) == 1          # 0.5 -> 1


def test_non_ties_round_to_nearest():
    assert rq(5, 1, 2) == 1          # 1.25
    assert rq(7, 1, 2) == 2          # 1.75
    assert rq(-5, 1, 2) == -1        # -1.25
    assert rq(-7, 1, 2) == -2        # -1.75


def test_shift_zero_is_identity_then_clamp():
    assert rq(17, 3, 0) == 51
    assert rq(100, 2, 0) == 127
    assert rq(-100, 2, 0) == -128


def test_shift_62_and_max_multiplier_exact():
    m = (1 << 31) - 1
    for acc in (np.iinfo(np.int32).max, np.iinfo(np.int32).min, 123456789, -987654321):
        exact = acc * m  # Python int: exact
        expected = (exact + (1 << 61)) >> 62
        got = int(round_shift(np.array([acc * m], dtype=object).astype(np.int64), 62)[0])
        assert got == expected
        assert rq(acc, m, MAX_SHIFT) == max(-128, min(127, expected))


def test_large_products_do_not_overflow():
    m = (1 << 31) - 1
    acc = np.iinfo(np.int32).min
    # acc * m / 2**31 ~ -(2**31): clamps to -128, no wrap to positive
    assert rq(acc, m, 31) == -128
    assert rq(np.iinfo(np.int32).max, m, 31) == 127


def test_zero_point_and_relu_clamps():
    assert rq(0, 1 << 30, 31, zp=-100) == -100
    assert rq(-1000, 1 << 30, 31, zp=-100, relu=True) == -100   # relu clamps at the zero point
    assert rq(-1000, 1 << 30, 31, zp=-100, relu=False) == -128
    assert rq(10 ** 6, 1 << 30, 31, zp=-100, relu=True) == 127
    assert rq(3, 1 << 30, 31, zp=5) == 5 + 2                    # 1.5 -> 2


def test_per_channel_broadcast():
    acc = np.array([[10, 10, 10]], np.int32)
    out = requantize(acc, np.array([1 << 30, 1 << 29, 0]), np.array([31, 31, 0]), 0, False)
    np.testing.assert_array_equal(out, [[5, 3, 0]])  # 5, 2.5 -> 3, 0


def test_requantize_rejects_bad_arguments():
    with pytest.raises(TypeError):
        requantize(np.array([1], np.int64), 1, 0, 0, False)
    with pytest.raises(ValueError):
        requantize(np.array([1], np.int32), 1 << 31, 0, 0, False)
    with pytest.raises(ValueError):
        requantize(np.array([1], np.int32), 1, 63, 0, False)
    with pytest.raises(ValueError):
        requantize(np.array([1], np.int32), 1, 0, 128, False)


def test_wrap_int32():
    np.testing.assert_array_equal(wrap_int32([1 << 31, -(1 << 31) - 1, 5]), [-(1 << 31), (1 << 31) - 1, 5])


@pytest.mark.parametrize("real", [1e-9, 3.7e-5, 0.0123, 0.5, 0.999999, 1.0, 1.5, 255.0, 1e6, 2.0 ** 30])
def test_quantize_multiplier_accuracy(real):
    m, n = quantize_multiplier(real)
    assert 0 <= m < 1 << 31 and 0 <= n <= MAX_SHIFT
    if n < MAX_SHIFT:
        assert m >= 1 << 30  # 31 bits of precision
    assert abs(m * 2.0 ** -n - real) <= 2.0 ** -n  # within half an ulp... plus rounding of the float
    assert abs(m * 2.0 ** -n / real - 1) < 2 ** -29 or n == MAX_SHIFT


def test_quantize_multiplier_random_relative_error():
    rng = np.random.default_rng(0)
    for real in 10 ** rng.uniform(-6, 3, 200):
        m, n = quantize_multiplier(float(real))
        assert abs(m / 2.0 ** n / real - 1) < 2 ** -30


def test_quantize_multiplier_edges():
    assert quantize_multiplier(0.0) == (0, 0)
    m, n = quantize_multiplier(1 - 2 ** -40)  # mantissa rounds up to the next power of two
    assert m < 1 << 31 and m * 2.0 ** -n == pytest.approx(1.0)
    for bad in (-1.0, math.inf, math.nan, 2.0 ** 31):
        with pytest.raises(ValueError):
            quantize_multiplier(bad)


def test_add_multipliers_reconstruct_scales():
    ka, kb, m, n = add_multipliers(0.05, 0.02, 0.08)
    unit = 0.05 / (1 << 14)
    assert ka == 1 << 14 and kb == round(0.02 / unit)
    assert m * 2.0 ** -n == pytest.approx(unit / 0.08, rel=1e-8)
