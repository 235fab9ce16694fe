"""sqzhw.compiler.frontend: ONNX import, shapes, fusions, QDQ and error messages."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sqzhw.compiler.float_ref import run_float, run_onnxruntime, softmax
from sqzhw.compiler.frontend import FrontendError, import_onnx, supported_ops
from sqzhw.compiler.graph import Add, Concat, Conv, GlobalAvgPool, MaxPool
from sqzhw.models import build_squeezenet, save_model

RNG = np.random.default_rng(0)


def _w(*shape):
    return (RNG.standard_normal(shape) * 0.3).astype(np.float32)


def _model(nodes, inits, in_shape=(1, 3, 9, 9), out="out", out_shape=None, opset=13, input_name="x"):
    """A small model; ``inits`` maps names to arrays."""
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    if out_shape is not None:
        onnx.checker.check_model(m)
    return m


def _head(x, c_out=None):
    """GlobalAveragePool + Flatten ending a test model."""
    return [helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
            helper.make_node("Flatten", ["gap"], ["out"], name="flat", axis=1)]


def _compare(model, in_shape, rtol=1e-5):
    g = import_onnx(model)
    x = RNG.standard_normal(in_shape).astype(np.float32)
    got = run_float(g, x)[g.output].ravel()
    if g.softmax:
        got = softmax(got)
    ref = run_onnxruntime(model, x)["output"].ravel()
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    return g


# -- the real models ------------------------------------------------------------------------------

@pytest.mark.models
def test_import_shared_squeezenet11(squeezenet11_path):
    g = import_onnx(squeezenet11_path)
    assert g.input == "data" and g.input_shape == (3, 227, 227)
    assert g.softmax and g.output == "pool10" and g.shapes["pool10"] == (1000, 1, 1)
    convs = [n for n in g.nodes if isinstance(n, Conv)]
    assert len(convs) == 26 and all(c.relu for c in convs)
    # Fused ReLUs take the ReLU's tensor name.
    assert convs[0].output == "relu_conv1" and g.shapes["relu_conv1"] == (64, 113, 113)
    pools = {n.output: n for n in g.nodes if isinstance(n, MaxPool)}
    # ceil_mode: 56 -> 28 and 28 -> 14 need one extra bottom/right row; 113 -> 56 does not.
    assert pools["pool1"].pads == (0, 0, 0, 0) and g.shapes["pool1"] == (64, 56, 56)
    assert pools["pool3"].pads == (0, 0, 1, 1) and g.shapes["pool3"] == (128, 28, 28)
    assert pools["pool5"].pads == (0, 0, 1, 1) and g.shapes["pool5"] == (256, 14, 14)
    assert isinstance(g.producer("pool10"), GlobalAvgPool)
    assert [type(n) for n in g.consumers("fire2/relu_squeeze1x1")] == [Conv, Conv]
    assert sum(isinstance(n, Concat) for n in g.nodes) == 8


@pytest.mark.models
def test_import_shared_squeezenet10_and_resize(squeezenet10_path):
    g = import_onnx(squeezenet10_path)
    assert g.shapes["conv1_relu"] == (96, 111, 111)
    # Caffe's conv10 has pad 1: 13x13 -> 15x15 before the global pool.
    assert g.shapes["conv10_relu"] == (1000, 15, 15)
    small = import_onnx(squeezenet10_path, input_size=(99, 120))
    assert small.input_shape == (3, 99, 120)
    assert small.shapes["conv1_relu"] == (96, 47, 57)
    x = np.random.default_rng(0).uniform(-100, 100, (3, 99, 120)).astype(np.float32)
    assert run_float(small, x)[small.output].shape == (1000, 1, 1)
    with pytest.raises(FrontendError, match="below 1 pixel"):
        import_onnx(squeezenet10_path, input_size=(20, 20))


# -- shapes against onnxruntime -----------------------------------------------------------------

@pytest.mark.parametrize("version,size", [("1.1", (61, 77)), ("1.0", (100, 101)), ("1.1", (227, 227))])
def test_shapes_match_onnxruntime(version, size):
    model = build_squeezenet(version, "complex", "torchvision", input_size=size, num_classes=6, width_mult=0.25)
    g = import_onnx(model)
    names = [n.output for n in g.nodes]
    x = np.random.default_rng(1).standard_normal((3, *size)).astype(np.float32)
    ort = run_onnxruntime(model, x, outputs=names)
    env = run_float(g, x)
    for n in names:
        assert g.shapes[n] == ort[n].shape[1:], n
        np.testing.assert_allclose(env[n], ort[n][0], rtol=1e-4, atol=1e-4 * max(1, np.abs(ort[n]).max()))


@pytest.mark.parametrize("h,k,s,pads,ceil", [(10, 3, 2, (0, 0, 0, 0), 1), (9, 3, 2, (0, 0, 0, 0), 1),
                                             (8, 2, 2, (1, 1, 0, 0), 1), (11, 3, 3, (1, 1, 1, 1), 1),
                                             (12, 3, 2, (0, 0, 0, 0), 0), (6, 3, 4, (2, 2, 0, 0), 1)])
def test_maxpool_ceil_and_pads_match_onnxruntime(h, k, s, pads, ceil):
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="mp", kernel_shape=[k, k], strides=[s, s],
                              pads=list(pads), ceil_mode=ceil), *_head("p")]
    g = _compare(_model(nodes, {}, in_shape=(1, 3, h, h + 1)), (3, h, h + 1))
    mp = g.nodes[0]
    # The extra ceil rows are explicit bottom/right pads.
    ho = (h + mp.pads[0] + mp.pads[2] - k) // s + 1
    assert g.shapes["p"][1] == ho


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad(auto_pad):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], strides=[2, 2],
                              auto_pad=auto_pad),
             helper.make_node("MaxPool", ["c"], ["p"], name="mp", kernel_shape=[2, 2], strides=[2, 2],
                              auto_pad=auto_pad),
             *_head("p")]
    g = _compare(_model(nodes, {"w": _w(4, 3, 3, 3), "b": _w(4)}, in_shape=(1, 3, 10, 9)), (3, 10, 9))
    conv = g.nodes[0]
    if auto_pad == "SAME_UPPER":
        # height 10: total pad 1, at the bottom; width 9: total pad 2, one each side.
        assert conv.pads == (0, 1, 1, 1) and g.shapes["c"] == (4, 5, 5)
    elif auto_pad == "SAME_LOWER":
        assert conv.pads == (1, 1, 0, 1)
    else:
        assert conv.pads == (0, 0, 0, 0) and g.shapes["c"] == (4, 4, 4)


# -- graph rewrites -------------------------------------------------------------------------------

def test_relu_fused_into_conv_and_add():
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="c2", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "r1"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["ra"], name="ra"), *_head("ra")]
    g = _compare(_model(nodes, {"w1": _w(4, 3, 3, 3), "b1": _w(4), "w2": _w(4, 4, 3, 3), "b2": _w(4)}), (3, 9, 9))
    c1, c2, add, gap = g.nodes
    assert c1.relu and c1.output == "r1" and not c2.relu
    assert isinstance(add, Add) and add.relu and add.output == "ra" and add.inputs == ["c2", "r1"]
    assert gap.input == "ra" and "c1" not in g.shapes


def test_relu_not_fused_when_conv_output_is_shared():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv0"),
             helper.make_node("Relu", ["c"], ["r"], name="relu0"),
             helper.make_node("Add", ["c", "r"], ["a"], name="add"), *_head("a")]
    with pytest.raises(FrontendError, match=r"'relu0' \(Relu\).*also read by.*'add' \(Add\)"):
        import_onnx(_model(nodes, {"w": _w(3, 3, 1, 1), "b": _w(3)}))


def test_relu_after_maxpool_is_refused():
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="mp", kernel_shape=[2, 2]),
             helper.make_node("Relu", ["p"], ["r"], name="relu_after_pool"), *_head("r")]
    with pytest.raises(FrontendError, match=r"'relu_after_pool' \(Relu\).*MaxPool"):
        import_onnx(_model(nodes, {}))


@pytest.mark.parametrize("opset", [11, 13])
def test_dropout_identity_reshape_squeeze_softmax_removed(opset):
    drop = (helper.make_node("Dropout", ["i"], ["d"], name="drop", ratio=0.3) if opset < 12 else
            helper.make_node("Dropout", ["i", "ratio", "mode"], ["d", "mask"], name="drop"))
    squeeze = (helper.make_node("Squeeze", ["rs"], ["sq"], name="sq", axes=[2, 3]) if opset < 13 else
               helper.make_node("Squeeze", ["rs", "axes"], ["sq"], name="sq"))
    nodes = [helper.make_node("Identity", ["x"], ["i"], name="id"), drop,
             helper.make_node("Conv", ["d", "w", "b"], ["c"], name="conv"),
             helper.make_node("AveragePool", ["c"], ["ap"], name="ap", kernel_shape=[9, 9]),
             helper.make_node("Reshape", ["ap", "shape"], ["rs"], name="rs"), squeeze,
             helper.make_node("Softmax", ["sq"], ["out"], name="sm", axis=1)]
    inits = {"w": _w(5, 3, 1, 1), "b": _w(5), "shape": np.array([0, 5, 1, 1], np.int64)}
    if opset >= 12:
        inits.update(ratio=np.array(0.5, np.float32), mode=np.array(False))
    if opset >= 13:
        inits["axes"] = np.array([2, 3], np.int64)
    g = _compare(_model(nodes, inits, opset=opset), (3, 9, 9))
    assert [type(n) for n in g.nodes] == [Conv, GlobalAvgPool]
    assert g.nodes[0].input == "x" and g.softmax and g.output == "ap"


def test_softmax_on_the_wrong_axis_is_refused():
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["gap"], name="gap"),
             helper.make_node("Softmax", ["gap"], ["out"], name="sm4d")]  # opset 13 default axis -1
    with pytest.raises(FrontendError, match=r"'sm4d' \(Softmax\), attribute 'axis'"):
        import_onnx(_model(nodes, {}))


def test_constant_nodes_as_weights():
    model = build_squeezenet("1.1", None, "torchvision", input_size=(48, 48), num_classes=4, width_mult=0.25)
    ref = import_onnx(model)
    consts = [helper.make_node("Constant", [], [t.name], name=f"const_{t.name}", value=t)
              for t in model.graph.initializer]
    nodes = consts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    g = import_onnx(model)
    for a, b in zip(ref.nodes, g.nodes):
        if isinstance(a, Conv):
            np.testing.assert_array_equal(a.weight, b.weight)
            np.testing.assert_array_equal(a.bias, b.bias)


def test_dynamic_batch_and_size():
    model = build_squeezenet("1.1", None, "deepscale", input_size=(64, 64), num_classes=4, width_mult=0.25)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param = "N"
    g = import_onnx(model)
    assert g.input_shape == (3, 64, 64)
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    with pytest.raises(FrontendError, match="pass input_size"):
        import_onnx(model)
    assert import_onnx(model, input_size=(80, 96)).input_shape == (3, 80, 96)


def test_path_input(tmp_path):
    model = build_squeezenet("1.0", "simple", "zoo", input_size=(90, 90), num_classes=4, width_mult=0.25)
    g = import_onnx(save_model(model, tmp_path / "m.onnx"))
    assert g.input == "data" and not g.softmax and sum(isinstance(n, Add) for n in g.nodes) == 4
    with pytest.raises(FrontendError, match="does not exist"):
        import_onnx(tmp_path / "missing.onnx")


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("node,inits,pattern", [
    (helper.make_node("Conv", ["x", "w"], ["c"], name="grouped", group=3), {"w": _w(3, 1, 3, 3)},
     r"node 'grouped' \(Conv\), attribute 'group': group=3"),
    (helper.make_node("Conv", ["x", "w"], ["c"], name="dil", dilations=[2, 2]), {"w": _w(3, 3, 3, 3)},
     r"node 'dil' \(Conv\), attribute 'dilations'"),
    (helper.make_node("Mul", ["x", "s"], ["c"], name="scale_it"), {"s": _w(1)},
     r"node 'scale_it' \(Mul\): op type 'Mul' is not supported"),
    (helper.make_node("Conv", ["x", "x"], ["c"], name="dynw"), {},
     r"node 'dynw' \(Conv\).*must be a constant"),
    (helper.make_node("AveragePool", ["x"], ["c"], name="ap", kernel_shape=[2, 2]), {},
     r"node 'ap' \(AveragePool\), attribute 'kernel_shape'"),
])
def test_unsupported_is_a_clear_error(node, inits, pattern):
    model = _model([node, *_head("c")], inits)
    with pytest.raises(FrontendError, match=pattern) as e:
        import_onnx(model)
    assert "Supported ops: " in str(e.value) and "Conv" in str(e.value)


def test_gemm_and_lstm_refused():
    nodes = [*_head("x")[:1], helper.make_node("Flatten", ["gap"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w"], ["out"], name="fc")]
    with pytest.raises(FrontendError, match=r"'fc' \(Gemm\)"):
        import_onnx(_model(nodes, {"w": _w(3, 4)}))
    assert "LSTM" not in supported_ops() and "Gemm" not in supported_ops()


def test_output_must_come_from_global_pool():
    nodes = [helper.make_node("Conv", ["x", "w"], ["out"], name="last")]
    with pytest.raises(FrontendError, match="global average pool"):
        import_onnx(_model(nodes, {"w": _w(3, 3, 1, 1)}))


def test_reshape_before_the_pool_refused():
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="early_flat"),
             helper.make_node("Identity", ["f"], ["out"], name="id")]
    with pytest.raises(FrontendError, match=r"'early_flat' \(Flatten\).*after the global pool"):
        import_onnx(_model(nodes, {}))


def test_not_a_model():
    with pytest.raises(FrontendError, match="path or an onnx.ModelProto"):
        import_onnx(42)


# -- QDQ ------------------------------------------------------------------------------------------

def _qdq(tmp_path, per_channel, activation_type, bypass="complex", style="torchvision"):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            name, scale = ("data", 60.0) if style == "deepscale" else ("input.1", 1.0)
            self.data = iter([{name: (rng.standard_normal((1, 3, 48, 48)) * scale).astype(np.float32)}
                              for _ in range(4)])

        def get_next(self):
            return next(self.data, None)

    model = build_squeezenet("1.1", bypass, style, input_size=(48, 48), num_classes=8, width_mult=0.25)
    fp = save_model(model, tmp_path / "float.onnx")
    qp = tmp_path / "qdq.onnx"
    quantize_static(str(fp), str(qp), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=activation_type, weight_type=QuantType.QInt8)
    return model, qp


@pytest.mark.parametrize("per_channel,act,bypass,style", [(False, "QUInt8", "complex", "torchvision"),
                                                          (True, "QInt8", "complex", "torchvision"),
                                                          (True, "QUInt8", "simple", "deepscale")])
def test_qdq_model(tmp_path, per_channel, act, bypass, style):
    from onnxruntime.quantization import QuantType

    float_model, qpath = _qdq(tmp_path, per_channel, getattr(QuantType, act), bypass, style)
    qm = onnx.load(str(qpath))
    assert any(n.op_type == "QuantizeLinear" for n in qm.graph.node)
    ref = import_onnx(float_model)
    g = import_onnx(qpath)
    # Same structure as the float model: QDQ pairs removed, the ReLUs onnxruntime dropped restored.
    # (onnxruntime may reorder the nodes. A simple bypass Add sums two ReLU outputs, so its range
    # starts at 0 too and it may gain an equivalent relu=True.)
    def summary(graph):
        return {n.output: (type(n), n.relu if isinstance(n, Conv) else None,
                           getattr(n, "inputs", getattr(n, "input", None))) for n in graph.nodes}
    assert summary(g) == summary(ref)
    convs = [n for n in g.nodes if isinstance(n, Conv)]
    assert set(g.weight_scales) == {c.name for c in convs}
    ref_convs = {n.output: n for n in ref.nodes if isinstance(n, Conv)}
    for c in convs:
        r = ref_convs[c.output]
        s = g.weight_scales[c.name]
        assert s.shape == (c.weight.shape[0],)
        if not per_channel:
            assert np.all(s == s[0])
        # Dequantized weights are the float ones rounded to the scale grid.
        err = np.abs(c.weight - r.weight).reshape(len(s), -1).max(axis=1)
        assert np.all(err <= s * 0.5 + 1e-7)
        q = c.weight / s[:, None, None, None]
        np.testing.assert_allclose(q, np.round(q), atol=1e-3)
    # Every activation tensor has quantization parameters, int8 zero points.
    assert g.input in g.qparams
    for n in g.nodes:
        assert n.output in g.qparams, n.output
    for scale, zp in g.qparams.values():
        assert scale > 0 and -128 <= zp <= 127 and isinstance(zp, int)
    # ReLU outputs start at real 0: zero point -128 whatever the activation type.
    relu_out = convs[0].output
    assert g.qparams[relu_out][1] == -128
    # The dequantized float graph stays close to the quantized model's own output.
    x = np.random.default_rng(3).standard_normal((3, 48, 48)).astype(np.float32) * (60 if style == "deepscale" else 1)
    got = run_float(g, x)[g.output].ravel()
    want = run_onnxruntime(qpath, x, logits=True)["logits" if g.softmax else "output"].ravel()
    assert g.softmax == (style == "deepscale")
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max()


def test_qdq_uint8_zero_point_shift():
    # Input quantized to uint8 with zero point 140 -> int8 zero point 12.
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wzp"], ["w"], name="dqw", axis=0),
             helper.make_node("Conv", ["xd", "w"], ["c"], name="conv"), *_head("c")]
    wq = RNG.integers(-127, 128, (4, 3, 1, 1)).astype(np.int8)
    ws = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    inits = {"s": np.array(0.05, np.float32), "zp": np.array(140, np.uint8), "wq": wq, "ws": ws,
             "wzp": np.zeros(4, np.int8)}
    g = import_onnx(_model(nodes, inits))
    assert g.qparams["x"] == (pytest.approx(0.05), 12)
    np.testing.assert_allclose(g.nodes[0].weight, wq * ws[:, None, None, None], rtol=1e-6)
    np.testing.assert_allclose(g.weight_scales["conv"], ws)
    assert not g.nodes[0].relu  # zero point 12 is not a clamp at 0
