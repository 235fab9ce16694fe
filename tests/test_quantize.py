"""The int8 post-training quantizer (sqzhw.compiler.quantize) on small hand-made float graphs."""

import numpy as np
import pytest

from sqzhw.compiler import quantize as Q
from sqzhw.compiler.float_ref import run_float
from sqzhw.compiler.graph import Add, Concat, Conv, GlobalAvgPool, Graph, MaxPool, QParams
from sqzhw.golden import layers
from sqzhw.program import Preprocess


def _conv(rng, name, inp, out, cin, cout, k, relu=True, pads=None, stride=(1, 1)):
    p = k // 2 if pads is None else pads
    w = rng.normal(0, 1 / np.sqrt(cin * k * k), (cout, cin, k, k)).astype(np.float32)
    b = rng.normal(0, 0.1, cout).astype(np.float32)
    return Conv(name, inp, out, w, b, stride, (p, p, p, p), relu)


def _fire_graph(seed=0, size=12, bypass=True):
    """conv1-relu -> pool -> squeeze -> (e1, e3) -> concat (+ bypass add) -> conv10-relu -> GAP."""
    rng = np.random.default_rng(seed)
    nodes = [
        _conv(rng, "conv1", "data", "c1", 3, 8, 3, stride=(2, 2), pads=0),
        MaxPool("pool1", "c1", "p1", (3, 3), (2, 2), (0, 0, 1, 1)),
        _conv(rng, "squeeze", "p1", "sq", 8, 4, 1),
        _conv(rng, "e1", "sq", "e1", 4, 4, 1),
        _conv(rng, "e3", "sq", "e3", 4, 4, 3),
        Concat("cat", ["e1", "e3"], "cat"),
    ]
    last = "cat"
    if bypass:
        nodes.append(Add("bypass", ["p1", "cat"], "sum", relu=False))
        last = "sum"
    nodes += [_conv(rng, "conv10", last, "c10", 8, 10, 1), GlobalAvgPool("gap", "c10", "out")]
    c1 = (size - 3) // 2 + 1
    p1 = (c1 + 1 - 3) // 2 + 1
    shapes = {"data": (3, size, size), "c1": (8, c1, c1), "p1": (8, p1, p1), "sq": (4, p1, p1),
              "e1": (4, p1, p1), "e3": (4, p1, p1), "cat": (8, p1, p1), "sum": (8, p1, p1),
              "c10": (10, p1, p1), "out": (10, 1, 1)}
    return Graph("fire", "data", (3, size, size), "out", nodes, shapes)


def _calib(n=8, size=12, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 2, (3, size, size)).astype(np.float32) for _ in range(n)]


def test_weight_round_trip_per_channel():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (6, 3, 3, 3)) * np.array([1e-3, 0.1, 1, 10, 100, 0])[:, None, None, None]
    q, s = Q.quantize_weights(w)
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    np.testing.assert_array_equal(np.abs(q[:5]).reshape(5, -1).max(axis=1), 127)  # full range per channel
    assert s[5] == 1.0 and not q[5].any()
    err = np.abs(q * s[:, None, None, None] - w)
    assert np.all(err <= s[:, None, None, None] / 2 + 1e-12)


def test_qdq_weight_scales_are_used_and_clip():
    w = np.array([[[[0.5, -2.0]]]])
    q, s = Q.quantize_weights(w, np.array([0.01]))
    np.testing.assert_array_equal(q.ravel(), [50, -127])
    assert s[0] == 0.01


def test_qparams_from_range():
    q = Q.qparams_from_range(0.0, 25.5)
    assert q == QParams(0.1, -128)
    q = Q.qparams_from_range(-1.0, 3.0)
    assert q.zero_point == round(-128 + 1.0 / q.scale)
    assert Q.qparams_from_range(0.5, 2.0).zero_point == -128  # widened to contain 0


def test_relu_outputs_have_zero_point_minus_128_and_concat_shares():
    g = _fire_graph(bypass=False)
    qg = Q.quantize(g, _calib(), method="mse")
    for node in qg.nodes:
        if getattr(node, "relu", False):
            assert node.out_q.zero_point == -128, node.name
    tq = qg.tensor_q
    assert tq["e1"] == tq["e3"] == tq["cat"]
    assert tq["c1"] == tq["p1"]  # max-pool passes its QParams through
    cat = next(n for n in qg.nodes if n.name == "cat")
    assert cat.q == tq["cat"]
    # Union of the ranges: covers both branches' maxima under min/max calibration.
    qg = Q.quantize(g, _calib(), method="minmax")
    stats = Q.collect_stats(g, _calib())
    top = max(stats["e1"].hi, stats["e3"].hi)
    assert qg.tensor_q["cat"].scale * 255 == pytest.approx(top, rel=1e-6)


@pytest.mark.parametrize("method", Q.METHODS)
def test_quantized_graph_tracks_float(method):
    g = _fire_graph()
    calib = _calib()
    qg = Q.quantize(g, calib, method=method)
    for x in _calib(4, seed=9):
        f = run_float(g, x)[g.output].ravel()
        sums = layers.run_quantized(qg, layers.quantize_input(x, qg.input_q))[qg.output]
        q = layers.dequantize_output(sums, qg)
        cos = f @ q / np.linalg.norm(f) / np.linalg.norm(q)
        assert cos > 0.995, (method, cos)
        assert np.abs(f - q).max() < 0.05 * np.abs(f).max() + 1e-3


def test_bias_and_multipliers():
    g = _fire_graph()
    qg = Q.quantize(g, _calib())
    for node, fnode in zip(qg.nodes, g.nodes):
        if fnode.op == "Conv":
            assert node.bias.dtype == np.int32
            expect = np.round(fnode.bias / (node.in_q.scale * node.weight_scale))
            np.testing.assert_array_equal(node.bias, expect)
            real = node.multiplier * 2.0 ** -node.shift.astype(float)
            np.testing.assert_allclose(real, node.in_q.scale * node.weight_scale / node.out_q.scale,
                                       rtol=1e-8)
    add = next(n for n in qg.nodes if n.op == "Add")
    assert add.a_q == qg.tensor_q["p1"] and add.b_q == qg.tensor_q["cat"]
    assert add.out_q.zero_point == -128  # both inputs are ReLU outputs: the sum's range starts at 0


def test_qdq_scales_honoured_without_calibration(capsys):
    g = _fire_graph()
    fixed = {t: (0.05 + 0.01 * i, -128 if t != "data" and t != "sum" else 3) for i, t in enumerate(
        ["data", "c1", "p1", "sq", "e1", "e3", "cat", "sum", "c10"])}
    g.qparams = dict(fixed)
    g.weight_scales = {"conv10": np.full(10, 0.002)}
    qg = Q.quantize(g, [])  # no calibration needed
    assert "QDQ" in capsys.readouterr().out
    # Concat groups take the output's QParams; max-pool groups share too.
    assert qg.tensor_q["cat"] == qg.tensor_q["e1"] == qg.tensor_q["e3"] == QParams(*fixed["cat"])
    assert qg.tensor_q["sq"] == QParams(*fixed["sq"])
    assert qg.tensor_q["sum"] == QParams(*fixed["sum"])
    assert qg.input_q == QParams(*fixed["data"])
    conv10 = next(n for n in qg.nodes if n.name == "conv10")
    np.testing.assert_array_equal(conv10.weight_scale, 0.002)
    w = g.nodes[-2].weight
    np.testing.assert_array_equal(conv10.weight, np.clip(np.round(w / 0.002), -127, 127))


def test_qdq_partial_calibrates_the_rest():
    g = _fire_graph()
    g.qparams = {"sq": (0.02, -128)}
    qg = Q.quantize(g, _calib(), verbose=False)
    assert qg.tensor_q["sq"] == QParams(0.02, -128)
    assert qg.tensor_q["c10"] != QParams(0.02, -128)


def test_bias_overflow_names_the_layer():
    g = _fire_graph()
    g.nodes[2].bias[:] = 1e9  # 'squeeze': bias / (s_in * s_w) cannot fit int32
    with pytest.raises(Q.QuantizeError, match="'squeeze' \\(Conv\\).*int32"):
        Q.quantize(g, _calib())


def test_accumulator_overflow_names_the_layer():
    # Bias fits int32 on its own but bias + the deepest reduction does not.
    g = _fire_graph()
    qg = Q.quantize(g, _calib())
    sq = next(n for n in qg.nodes if n.name == "squeeze")
    unit = sq.in_q.scale * sq.weight_scale[0]
    g.nodes[2].bias[0] = (2**31 - 1000) * unit
    with pytest.raises(layers.AccumulatorOverflowError, match="'squeeze'"):
        Q.quantize(g, _calib())


def test_bad_inputs_are_named():
    g = _fire_graph()
    with pytest.raises(Q.QuantizeError, match="method"):
        Q.quantize(g, _calib(), method="kl")
    with pytest.raises(Q.QuantizeError, match="calibration input 0 has shape"):
        Q.quantize(g, [np.zeros((3, 5, 5), np.float32)])
    with pytest.raises(Q.QuantizeError, match="no calibration"):
        Q.quantize(g, [])
    g.nodes = g.nodes[:-1]
    with pytest.raises(Q.QuantizeError, match="global average pool"):
        Q.quantize(g, _calib())


def test_mse_error_matches_dense_numeric():
    # The closed-form rounding+clipping error equals a dense numerical integral of uniform bins.
    rng = np.random.default_rng(3)
    counts = np.zeros(Q._NBINS, np.int64)
    idx = rng.integers(700, 900, 40)
    np.add.at(counts, idx, rng.integers(1, 50, 40))
    clip, delta = Q._EDGES[850], Q._EDGES[850] / 127
    closed = Q._side_error(counts, np.array(clip), np.array(delta), 1.0)
    total = 0.0
    for i in np.nonzero(counts)[0]:
        a, b = Q._EDGES[i], Q._EDGES[i + 1]
        x = np.linspace(a, b, 20001)
        xc = np.minimum(x, clip)
        err = (x - np.minimum(np.round(xc / delta) * delta, clip)) ** 2
        total += counts[i] * np.trapezoid(err, x) / (b - a)
    assert closed == pytest.approx(total, rel=1e-3)


def _sim_mse(x, lo, hi):
    q = Q.qparams_from_range(lo, hi)
    y = (np.clip(np.round(x / q.scale) + q.zero_point, -128, 127) - q.zero_point) * q.scale
    return np.mean((x - y) ** 2)


def test_mse_and_percentile_ranges():
    rng = np.random.default_rng(4)
    s = Q.TensorStats()
    x = np.concatenate([rng.exponential(1.0, 200_000), np.zeros(100_000)]).astype(np.float32)
    s.update(x)
    lo, hi = Q.choose_range(s, "minmax")
    assert (lo, hi) == (0.0, float(x.max()))
    lo_mse, hi_mse = Q.choose_range(s, "mse")
    assert lo_mse == 0.0 and hi_mse < 0.95 * hi  # clips the exponential tail ...
    assert _sim_mse(x, 0, hi_mse) < 0.9 * _sim_mse(x, 0, hi)  # ... and that lowers the real error
    _, hi_p = Q.choose_range(s, "percentile")
    assert hi_p == pytest.approx(np.percentile(x, Q.PERCENTILE), rel=0.03)
    # Signed: both ends chosen.
    s = Q.TensorStats()
    y = rng.laplace(0.5, 1.0, 200_000).astype(np.float32)
    s.update(y)
    lo_mse, hi_mse = Q.choose_range(s, "mse")
    assert y.min() < lo_mse < 0 < hi_mse < y.max()
    assert _sim_mse(y, lo_mse, hi_mse) < _sim_mse(y, y.min(), y.max())
    # The coordinate descent does as well as a brute-force 2-D search over (every other point of) its grid.
    grid = np.geomspace(1 / 64, 1, 49)
    hh, nn = np.meshgrid(s.hi * grid, -s.lo * grid, indexing="ij")
    brute = (Q._side_error(s.pos, hh, (hh + nn) / 255, 1.0)
             + Q._side_error(s.neg, nn, (hh + nn) / 255, 1.0)).min()
    found = (Q._side_error(s.pos, np.array(hi_mse), np.array((hi_mse - lo_mse) / 255), 1.0)
             + Q._side_error(s.neg, np.array(-lo_mse), np.array((hi_mse - lo_mse) / 255), 1.0))
    assert found <= 1.01 * brute


def test_input_range_of_presets():
    assert Q.input_range(Preprocess(8, 8, "BGR")) == (0.0, 255.0)
    assert Q.input_range(Preprocess(8, 8, "BGR", mean=(104.0, 117.0, 123.0))) == (-123.0, 151.0)
    g = _fire_graph()
    qg = Q.quantize(g, _calib(), input_range=(0.0, 255.0))
    assert qg.input_q == QParams(1.0, -128)


def test_calibration_inputs_generated_and_folder(tmp_path):
    from PIL import Image

    spec = Preprocess(16, 20, "RGB", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), pixel_scale=1 / 255)
    a = Q.calibration_inputs(None, spec, count=3, seed=5)
    b = Q.calibration_inputs(None, spec, count=3, seed=5)
    assert len(a) == 3 and all(x.shape == (3, 16, 20) and x.dtype == np.float32 for x in a)
    np.testing.assert_array_equal(a[0], b[0])
    assert np.std(a[0]) > 0.1  # not blank
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "i.png")
    c = Q.calibration_inputs(tmp_path, spec, count=4, seed=5)
    assert len(c) == 4 and c[0].shape == (3, 16, 20)
    assert not np.array_equal(c[0], c[1])  # different augmented views
    with pytest.raises(Q.QuantizeError, match="no images"):
        Q.calibration_inputs(tmp_path / "missing", spec, count=2, seed=5)


@pytest.mark.parametrize("version,bypass", [("1.1", None), ("1.0", "complex")])
def test_generated_squeezenet_tracks_float(version, bypass):
    # Whole generated networks (Fire modules, ceil-mode pools, bypass adds) on generated inputs.
    import dataclasses

    from sqzhw.compiler.frontend import import_onnx
    from sqzhw.models import build_squeezenet
    from sqzhw.preprocess import PRESETS

    model = build_squeezenet(version, bypass=bypass, input_size=(48, 48), num_classes=16, seed=3,
                             width_mult=0.25)
    g = import_onnx(model)
    spec = dataclasses.replace(PRESETS["torchvision"], height=48, width=48)
    qg = Q.quantize(g, Q.calibration_inputs(None, spec, count=4, seed=1), input_range=Q.input_range(spec))
    assert sum(n.op == "Add" for n in qg.nodes) == (8 if bypass == "complex" else 0)
    for node in qg.nodes:
        if node.op == "Conv":
            layers.check_accumulator(node)
    for x in Q.calibration_inputs(None, spec, count=3, seed=2):
        f = run_float(g, x)[g.output].ravel()
        sums = layers.run_quantized(qg, layers.quantize_input(x, qg.input_q))[qg.output]
        q = layers.dequantize_output(sums, qg)
        assert f @ q / (np.linalg.norm(f) * np.linalg.norm(q)) > 0.999
