"""The integer layer reference (sqzhw.golden.layers) against direct loop implementations."""

import numpy as np
import pytest

from sqzhw.compiler.graph import QAdd, QConcat, QConv, QGlobalAvgPool, QGraph, QMaxPool, QParams
from sqzhw.golden import layers
from sqzhw.quant import requantize, wrap_int32


def _qconv(rng, cin, cout, k, stride=(1, 1), pads=(0, 0, 0, 0), relu=False, zp_in=-3, zp_out=5,
           wmax=127, name="c"):
    weight = rng.integers(-wmax, wmax + 1, (cout, cin, k, k)).astype(np.int8)
    bias = rng.integers(-5000, 5000, cout).astype(np.int32)
    mult = rng.integers(1 << 30, 1 << 31, cout).astype(np.int64)
    shift = rng.integers(36, 42, cout).astype(np.int64)
    return QConv(name, "x", "y", weight, np.ones(cout), bias, mult, shift, stride, pads, relu,
                 QParams(0.1, zp_in), QParams(0.2, zp_out))


def _conv_loops(x, node):
    """Direct definition: pad with zp_in, sum (x - zp) * w per output pixel, wrap, requantize."""
    cout, cin, kh, kw = node.weight.shape
    t, l, b, r = node.pads
    sh, sw = node.stride
    zp = node.in_q.zero_point
    xp = np.full((cin, x.shape[1] + t + b, x.shape[2] + l + r), zp, np.int64)
    xp[:, t:t + x.shape[1], l:l + x.shape[2]] = x
    ho, wo = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    acc = np.zeros((cout, ho, wo), np.int64)
    w = node.weight.astype(np.int64)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw] - zp
            acc[:, i, j] = np.tensordot(w, patch, axes=3) + node.bias
    out = np.empty(acc.shape, np.int8)
    for c in range(cout):
        out[c] = requantize(wrap_int32(acc[c]), int(node.multiplier[c]), int(node.shift[c]),
                            node.out_q.zero_point, node.relu)
    return out


@pytest.mark.parametrize("k,stride,pads,relu", [
    (1, (1, 1), (0, 0, 0, 0), False),
    (1, (2, 2), (0, 0, 0, 0), True),
    (3, (1, 1), (1, 1, 1, 1), True),
    (3, (2, 2), (0, 0, 0, 0), False),
    (3, (2, 1), (0, 1, 2, 1), True),
])
def test_conv_matches_loops(k, stride, pads, relu):
    rng = np.random.default_rng(k * 7 + stride[0])
    node = _qconv(rng, 5, 7, k, stride, pads, relu, zp_in=int(rng.integers(-128, 128)))
    x = rng.integers(-128, 128, (5, 9, 8)).astype(np.int8)
    np.testing.assert_array_equal(layers.conv(x, node), _conv_loops(x, node))


def test_conv_exact_for_deep_reductions():
    # Bound >= 2**24: the float64 path; extreme operands everywhere.
    rng = np.random.default_rng(1)
    node = _qconv(rng, 512, 4, 3, pads=(1, 1, 1, 1), zp_in=127)
    node.weight[:] = rng.choice(np.array([-127, 127], np.int8), node.weight.shape)
    x = rng.choice(np.array([-128, 127], np.int8), (512, 4, 4))
    assert layers.accumulator_bound(node) >= 1 << 24
    np.testing.assert_array_equal(layers.conv(x, node), _conv_loops(x, node))


def test_conv_wraps_like_int32_hardware():
    rng = np.random.default_rng(2)
    node = _qconv(rng, 2, 2, 1, zp_in=0)
    node.bias[:] = 2**31 - 1
    node.weight[:] = 1
    x = np.full((2, 1, 1), 3, np.int8)
    acc = wrap_int32(np.int64(2**31 - 1) + 6)
    assert acc < 0
    expected = requantize(np.full(2, acc, np.int32), node.multiplier, node.shift,
                          node.out_q.zero_point, False)
    np.testing.assert_array_equal(layers.conv(x, node).ravel(), expected)


def test_conv_rejects_bad_input():
    rng = np.random.default_rng(3)
    node = _qconv(rng, 3, 2, 3, name="fire9/expand3x3")
    with pytest.raises(TypeError, match="fire9/expand3x3"):
        layers.conv(np.zeros((3, 5, 5), np.float32), node)
    with pytest.raises(ValueError, match="4 channels"):
        layers.conv(np.zeros((4, 5, 5), np.int8), node)


def test_accumulator_bound_design_case_fits():
    # DESIGN.md: 512 channels x 9 taps x 255 x 128 must not overflow int32.
    node = _qconv(np.random.default_rng(4), 512, 2, 3, zp_in=127)
    node.weight[:] = -127
    node.bias[:] = 0
    assert layers.accumulator_bound(node) == 512 * 9 * 127 * 255
    layers.check_accumulator(node)


def test_accumulator_overflow_fires():
    node = _qconv(np.random.default_rng(5), 512, 2, 3, zp_in=127, name="conv_big")
    node.weight[:] = 127
    node.bias[:] = 2**31 - 2**20
    with pytest.raises(layers.AccumulatorOverflowError, match="conv_big.*Conv"):
        layers.check_accumulator(node)


def test_folded_bias_within_bound():
    # The engine stores bias - zp_in*sum(w) as int32: the bound must cover it.
    rng = np.random.default_rng(6)
    for zp in (-128, -1, 0, 77, 127):
        node = _qconv(rng, 16, 3, 3, zp_in=zp)
        folded = node.bias.astype(np.int64) - zp * node.weight.astype(np.int64).sum(axis=(1, 2, 3))
        assert np.abs(folded).max() <= layers.accumulator_bound(node)


def _maxpool_loops(x, node):
    (kh, kw), (sh, sw) = node.kernel, node.stride
    t, l, b, r = node.pads
    c, h, w = x.shape
    ho, wo = (h + t + b - kh) // sh + 1, (w + l + r - kw) // sw + 1
    out = np.empty((c, ho, wo), np.int8)
    for i in range(ho):
        for j in range(wo):
            y0, x0 = i * sh - t, j * sw - l
            win = x[:, max(y0, 0):min(y0 + kh, h), max(x0, 0):min(x0 + kw, w)]  # real pixels only
            out[:, i, j] = win.max(axis=(1, 2))
    return out


@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (0, 0, 1, 1), (1, 1, 1, 1)])
def test_maxpool_padding_never_wins(pads):
    rng = np.random.default_rng(7)
    node = QMaxPool("pool", "x", "y", (3, 3), (2, 2), pads, QParams(0.1, 0))
    x = rng.integers(-128, -100, (4, 8, 8)).astype(np.int8)  # all below any plausible pad value
    np.testing.assert_array_equal(layers.maxpool(x, node), _maxpool_loops(x, node))


def test_maxpool_rejects_padding_only_window():
    node = QMaxPool("pool3", "x", "y", (2, 2), (2, 2), (0, 0, 3, 0), QParams(0.1, 0))
    with pytest.raises(ValueError, match="pool3.*only padding"):
        layers.maxpool(np.zeros((1, 4, 4), np.int8), node)


def test_concat_and_shared_qparams():
    q = QParams(0.5, -128)
    node = QConcat("cat", ["a", "b"], "y", q)
    a, b = np.ones((2, 3, 3), np.int8), np.full((5, 3, 3), -7, np.int8)
    y = layers.concat([a, b], node, [q, q])
    np.testing.assert_array_equal(y[:2], a)
    np.testing.assert_array_equal(y[2:], b)
    with pytest.raises(ValueError, match="cat.*share"):
        layers.concat([a, b], node, [q, QParams(0.25, -128)])


def test_add_matches_formula_and_float():
    from sqzhw.quant import add_multipliers

    rng = np.random.default_rng(8)
    aq, bq, oq = QParams(0.05, -10), QParams(0.11, 3), QParams(0.2, -128)
    ka, kb, m, n = add_multipliers(aq.scale, bq.scale, oq.scale)
    node = QAdd("add", ["a", "b"], "y", ka, kb, m, n, True, aq, bq, oq)
    a = rng.integers(-128, 128, (3, 4, 4)).astype(np.int8)
    b = rng.integers(-128, 128, (3, 4, 4)).astype(np.int8)
    y = layers.add(a, b, node)
    acc = ka * (a.astype(np.int64) + 10) + kb * (b.astype(np.int64) - 3)
    np.testing.assert_array_equal(y, requantize(wrap_int32(acc), m, n, -128, True))
    real = np.maximum(aq.scale * (a.astype(float) + 10) + bq.scale * (b.astype(float) - 3), 0)
    expected = np.clip(np.round(real / oq.scale) - 128, -128, 127)
    assert np.abs(y.astype(int) - expected).max() <= 1


def test_global_sum_pool():
    x = np.random.default_rng(9).integers(-128, 128, (6, 13, 13)).astype(np.int8)
    s = layers.global_sum_pool(x)
    assert s.dtype == np.int32 and s.shape == (6,)
    np.testing.assert_array_equal(s, x.astype(np.int64).sum(axis=(1, 2)))


def _tiny_qgraph(rng):
    q_in, q_a = QParams(0.1, -5), QParams(0.05, -128)
    c1 = _qconv(rng, 3, 4, 3, pads=(1, 1, 1, 1), relu=True, zp_in=-5, zp_out=-128, name="c1")
    c1.in_q, c1.out_q, c1.input, c1.output = q_in, q_a, "in", "t1"
    pool = QMaxPool("pool", "t1", "t2", (3, 3), (2, 2), (0, 0, 1, 1), q_a)
    c2 = _qconv(rng, 4, 4, 1, relu=True, zp_in=-128, zp_out=-128, name="c2")
    c2.in_q, c2.out_q, c2.input, c2.output = q_a, q_a, "t2", "t3"
    cat = QConcat("cat", ["t2", "t3"], "t4", q_a)
    gap = QGlobalAvgPool("gap", "t4", "out", q_a)
    shapes = {"in": (3, 8, 8), "t1": (4, 8, 8), "t2": (4, 4, 4), "t3": (4, 4, 4), "t4": (8, 4, 4),
              "out": (8, 1, 1)}
    tq = {"in": q_in, "t1": q_a, "t2": q_a, "t3": q_a, "t4": q_a}
    return QGraph("tiny", "in", (3, 8, 8), q_in, "out", [c1, pool, c2, cat, gap], shapes, tq)


def test_run_quantized_every_tensor():
    rng = np.random.default_rng(10)
    g = _tiny_qgraph(rng)
    x = rng.integers(-128, 128, (3, 8, 8)).astype(np.int8)
    seen = []
    out = layers.run_quantized(g, x, progress=lambda i, n, name: seen.append(name))
    assert seen == ["c1", "pool", "c2", "cat", "gap"]
    t1 = layers.conv(x, g.nodes[0])
    t2 = layers.maxpool(t1, g.nodes[1])
    t3 = layers.conv(t2, g.nodes[2])
    for name, ref in [("in", x), ("t1", t1), ("t2", t2), ("t3", t3)]:
        np.testing.assert_array_equal(out[name], ref)
    np.testing.assert_array_equal(out["out"], np.concatenate([t2, t3]).astype(np.int64).sum(axis=(1, 2)))
    logits = layers.dequantize_output(out["out"], g)
    np.testing.assert_allclose(logits, (out["out"] - 16 * -128) * 0.05 / 16)


def test_run_quantized_errors():
    rng = np.random.default_rng(11)
    g = _tiny_qgraph(rng)
    with pytest.raises(ValueError, match="expected"):
        layers.run_quantized(g, np.zeros((3, 7, 8), np.int8))
    with pytest.raises(TypeError, match="int8"):
        layers.run_quantized(g, np.zeros((3, 8, 8), np.uint8))
    g.nodes[2].in_q = QParams(0.3, 0)  # disagrees with the producer's QParams
    with pytest.raises(ValueError, match="c2.*quantized as"):
        layers.run_quantized(g, np.zeros((3, 8, 8), np.int8))


def test_quantize_input_rounding_and_clip():
    q = QParams(0.5, -3)
    x = np.array([[[0.25, 0.75, -100.0, 100.0]]])
    np.testing.assert_array_equal(layers.quantize_input(x, q), [[[-3, -1, -128, 127]]])
