"""Accuracy evaluation (sqzhw.evaluate): int8 top-1 agreement with the float model."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from sqzhw import evaluate
from sqzhw.program import Preprocess

SPEC = Preprocess(16, 16, "RGB", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), pixel_scale=1 / 255)


def _tiny_model(path, seed=0):
    """conv3x3-relu -> conv1x1-relu -> GlobalAveragePool -> Flatten -> Softmax, 10 classes."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.4, (10, 8, 1, 1)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(0.2, 0.1, 10).astype(np.float32), "b2")]
    nodes = [helper.make_node("Conv", ["data", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
             helper.make_node("Softmax", ["flat"], ["prob"], name="softmax", axis=1)]
    graph = helper.make_graph(nodes, "tiny",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return path


@pytest.fixture
def tiny(tmp_path):
    model = _tiny_model(tmp_path / "tiny.onnx")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        img = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(img).resize((20, 20), Image.BILINEAR).save(images / f"img{i}.png")
    refs = {"tiny.onnx": {"img0.png": {"top5": [3, 1, 2, 0, 4]}}}
    (images / "reference_top5.json").write_text(json.dumps(refs))
    return model, images


def test_agreement_on_a_tiny_model(tiny):
    model, images = tiny
    seen = []
    r = evaluate.agreement(model, SPEC, n_views=12, calib_count=8, images=images,
                           progress=lambda i, n, name: seen.append(i))
    assert seen == list(range(12))
    assert r.views == 12 and 0 <= r.agree <= 12
    assert r.mean_cosine > 0.999 and r.min_cosine <= r.mean_cosine
    assert r.agreement >= 75.0
    assert [o.image for o in r.originals] == ["img0.png", "img1.png"]
    assert r.originals[0].reference == 3 and r.originals[1].reference is None
    assert 0 <= r.originals[0].float_top1 < 10
    text = str(r)
    assert "tiny.onnx" in text and f"{r.agree}/12" in text


def test_agreement_is_deterministic_and_checks_seeds(tiny):
    model, images = tiny
    a = evaluate.agreement(model, SPEC, n_views=4, calib_count=4, images=images, method="minmax")
    b = evaluate.agreement(model, SPEC, n_views=4, calib_count=4, images=images, method="minmax")
    assert (a.agree, a.mean_cosine) == (b.agree, b.mean_cosine)
    with pytest.raises(ValueError, match="seeds must differ"):
        evaluate.agreement(model, SPEC, n_views=1, images=images, seed=7, calib_seed=7)
    with pytest.raises(ValueError, match="unknown preprocessing preset"):
        evaluate.agreement(model, "no-such-preset", n_views=1, images=images)


def test_main_prints_report(tiny, capsys, monkeypatch, tmp_path):
    from sqzhw import preprocess

    model, images = tiny
    monkeypatch.setitem(preprocess.PRESETS, "tiny-test", SPEC)
    assert evaluate.main([str(model), "--views", "3", "--calib", "4", "--images", str(images),
                          "--preset", "tiny-test"]) == 0
    out = capsys.readouterr().out
    assert "tiny.onnx (preset tiny-test, calibration mse on 4 views): top-1 agreement" in out
    assert "img0.png: reference 3" in out
    assert evaluate.main([str(model), "--views", "2", "--calib", "2", "--images", str(images),
                          "--preset", "tiny-test", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "accuracy.json").read_text())
    assert saved[0]["model"] == "tiny.onnx" and saved[0]["views"] == 2
    assert saved[0]["originals"][0]["reference"] == 3
    assert evaluate.main([str(model.parent / "missing.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert evaluate.main([str(model), "--preset", "nope", "--images", str(images)]) == 2
    assert "unknown preprocessing preset 'nope'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.models
@pytest.mark.parametrize("which", ["1.1", "1.0"])
def test_real_models_agree_with_float(which, squeezenet11_path, squeezenet10_path, shared_images):
    model = squeezenet11_path if which == "1.1" else squeezenet10_path
    r = evaluate.agreement(model, f"deepscale-{which}", n_views=100, images=shared_images)
    print(r)
    assert r.agreement >= 95.0, str(r)
    assert r.mean_cosine > 0.999
    assert r.originals_correct == 3, str(r)
