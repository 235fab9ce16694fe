"""sqzhw.models: generated SqueezeNets are valid ONNX, run in onnxruntime and match the real architecture."""

import itertools
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from sqzhw.models import build_squeezenet, fire_config, save_model


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _params(model):
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if len(t.dims) in (1, 4))


def _weights(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.parametrize("version,style,bypass",
                         list(itertools.product(["1.0", "1.1"], ["deepscale", "torchvision", "zoo"],
                                                [None, "simple", "complex"])))
def test_variants_are_valid_and_run(version, style, bypass):
    model = build_squeezenet(version, bypass, style, input_size=(75, 75), num_classes=12, width_mult=0.25)
    onnx.checker.check_model(model, full_check=True)
    out = _run(model, np.random.default_rng(0).standard_normal((1, 3, 75, 75)).astype(np.float32))
    assert out.shape == (1, 12)
    assert np.all(np.isfinite(out))
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Concat"] == 8
    assert ops["Add"] == {None: 0, "simple": 4, "complex": 8}[bypass]
    assert ops["Conv"] == 26 + (4 if bypass == "complex" else 0)
    assert (ops["Softmax"] == 1) == (style == "deepscale")
    assert (ops["Dropout"] == 1) == (style != "deepscale")
    if style == "zoo":
        assert model.opset_import[0].version == 7
        assert "ceil_mode" not in {a.name for n in model.graph.node for a in n.attribute}
        # IR version 3: initializers are graph inputs too.
        assert {t.name for t in model.graph.initializer} <= {i.name for i in model.graph.input}


@pytest.mark.parametrize("opset", range(11, 18))
def test_torchvision_every_opset(opset):
    for avgpool, flatten in (("global", "flatten"), ("average", "reshape")):
        model = build_squeezenet("1.0", None, "torchvision", input_size=(64, 64), num_classes=5,
                                 width_mult=0.25, opset=opset, avgpool=avgpool, flatten=flatten)
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version == opset
        drop = next(n for n in model.graph.node if n.op_type == "Dropout")
        # opset >= 12: ratio and training_mode are inputs; before, ratio is an attribute.
        assert (len(drop.input) == 3) == (opset >= 12)
        ops = {n.op_type for n in model.graph.node}
        assert ("GlobalAveragePool" in ops) == (avgpool == "global")
        assert ("Reshape" in ops) == (flatten == "reshape")
        out = _run(model, np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32))
        assert out.shape == (1, 5)


def test_torchvision_names_as_torch_writes_them():
    model = build_squeezenet("1.1", style="torchvision", width_mult=0.25, num_classes=10)
    names = [n.name for n in model.graph.node]
    for expected in ["/features/features.0/Conv", "/features/features.1/Relu", "/features/features.2/MaxPool",
                     "/features/features.3/squeeze/Conv", "/features/features.3/squeeze_activation/Relu",
                     "/features/features.3/expand3x3_activation/Relu", "/features/features.3/Concat",
                     "/features/features.5/MaxPool", "/features/features.12/Concat",
                     "/classifier/classifier.0/Dropout", "/classifier/classifier.1/Conv",
                     "/classifier/classifier.2/Relu", "/classifier/classifier.3/GlobalAveragePool", "/Flatten"]:
        assert expected in names
    assert model.graph.input[0].name == "input.1"
    assert "features.3.squeeze.weight" in _weights(model)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]


@pytest.mark.models
@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_deepscale_matches_the_real_architecture(version, squeezenet10_path, squeezenet11_path):
    real = onnx.load(str(squeezenet10_path if version == "1.0" else squeezenet11_path))
    ours = build_squeezenet(version, style="deepscale", input_size=(227, 227))
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in real.graph.node]
    real_shapes = sorted(tuple(t.dims) for t in real.graph.initializer)
    assert sorted(tuple(t.dims) for t in ours.graph.initializer) == real_shapes
    assert _params(ours) == {"1.0": 1_248_424, "1.1": 1_235_496}[version]
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 227, 227)).astype(np.float32)
    assert _run(ours, x).shape == _run(real, x).shape == (1, 1000)


def test_deepscale_names_follow_caffe():
    m = build_squeezenet("1.1", style="deepscale", width_mult=0.25, num_classes=10)
    outs = {o for n in m.graph.node for o in n.output}
    assert {"conv1", "relu_conv1", "pool1", "fire2/squeeze1x1", "fire2/relu_expand3x3", "fire2/concat",
            "pool3", "pool5", "conv10", "pool10", "prob"} <= outs
    assert m.graph.input[0].name == "data"


def test_bypass_placement():
    # Simple bypass around fire3/5/7/9 (channels match); complex adds 1x1 projections on fire2/4/6/8.
    simple = build_squeezenet("1.0", "simple", width_mult=0.25, num_classes=10)
    adds = [n for n in simple.graph.node if n.op_type == "Add"]
    assert [a.output[0] for a in adds] == [f"fire{i}/residual" for i in (3, 5, 7, 9)]
    assert adds[0].input == ["fire3/concat", "fire2/concat"]
    # v1.0: fire5's bypass comes from pool4 (the max-pool after fire4).
    assert adds[1].input == ["fire5/concat", "pool4"]
    cplx = build_squeezenet("1.1", "complex", width_mult=0.25, num_classes=10)
    projections = [n for n in cplx.graph.node if n.op_type == "Conv" and "bypass" in n.output[0]]
    assert [p.output[0] for p in projections] == [f"fire{i}/bypass1x1" for i in (2, 4, 6, 8)]
    # A projection has no ReLU: nothing but the Add reads it.
    for p in projections:
        readers = [n for n in cplx.graph.node if p.output[0] in n.input]
        assert [r.op_type for r in readers] == ["Add"]


def test_width_mult_and_seed():
    cfg = fire_config("1.1", 0.25)
    assert all(c % 4 == 0 and c >= 4 for f in cfg for c in f)
    assert cfg[0] == (16, 4, 16, 16)
    a = _weights(build_squeezenet("1.1", width_mult=0.25, num_classes=8, seed=1))
    b = _weights(build_squeezenet("1.1", width_mult=0.25, num_classes=8, seed=1))
    c = _weights(build_squeezenet("1.1", width_mult=0.25, num_classes=8, seed=2))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["conv1/W"], c["conv1/W"])
    assert a["conv10/W"].shape == (8, 128, 1, 1)  # 512 * 0.25


def test_activations_stay_sane():
    # He init: logits neither vanish nor explode, even with bypasses (softmax not saturated to one class).
    for bypass in (None, "simple", "complex"):
        m = build_squeezenet("1.1", bypass, "torchvision", input_size=(96, 96), num_classes=50, width_mult=0.5)
        out = _run(m, np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)).ravel()
        assert 0.05 < out.std() < 20, (bypass, out.std())


@pytest.mark.parametrize("size", [(227, 227), (224, 224), (113, 150), (35, 35)])
def test_any_admissible_input_size(size):
    m = build_squeezenet("1.1", input_size=size, num_classes=4, width_mult=0.25)
    assert _run(m, np.zeros((1, 3, *size), np.float32)).shape == (1, 4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="too small"):
        build_squeezenet("1.0", input_size=(20, 20))
    with pytest.raises(ValueError, match="version"):
        build_squeezenet("2.0")
    with pytest.raises(ValueError, match="bypass"):
        build_squeezenet(bypass="dense")
    with pytest.raises(ValueError, match="style"):
        build_squeezenet(style="keras")


def test_save_model(tmp_path):
    m = build_squeezenet("1.1", width_mult=0.25, num_classes=4, input_size=(40, 40))
    p = save_model(m, tmp_path / "sub" / "m.onnx")
    assert onnx.load(str(p)).SerializeToString() == m.SerializeToString()
