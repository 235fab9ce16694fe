"""sqzhw.preprocess: image loading, presets (reproducing the shared reference top-1), augmentation."""

import json

import numpy as np
import pytest
from PIL import Image

from sqzhw.compiler.float_ref import run_onnxruntime
from sqzhw.compiler.frontend import import_onnx
from sqzhw.models import build_squeezenet
from sqzhw.preprocess import PRESETS, augment, guess_preset, image_files, load_image, preprocess
from sqzhw.program import Preprocess


def _image(h=40, w=50, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_load_image_converts_to_rgb(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    rgba = np.dstack([_image(5, 6), np.full((5, 6), 9, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == (3, 4, 3) and g.dtype == np.uint8
    np.testing.assert_array_equal(g[..., 1], grey)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgba[..., :3])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png"):
        load_image(tmp_path / "bad.png")


def test_preprocess_formula_and_channel_order():
    img = _image(8, 6)
    spec = Preprocess(height=8, width=6, channel_order="BGR", mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0),
                      pixel_scale=0.5)
    x = preprocess(img, spec)
    assert x.shape == (3, 8, 6) and x.dtype == np.float32
    # Channel 0 is blue in BGR order; mean/std are in the model's channel order.
    np.testing.assert_allclose(x[0], (img[..., 2] * 0.5 - 1.0) / 2.0, rtol=1e-6)
    np.testing.assert_allclose(x[2], (img[..., 0] * 0.5 - 3.0) / 8.0, rtol=1e-6)
    rgb = preprocess(img, PRESETS["torchvision"].__class__(height=8, width=6))
    np.testing.assert_array_equal(rgb, img.transpose(2, 0, 1).astype(np.float32))


def test_preprocess_resizes_like_pillow_bilinear():
    img = _image(31, 47)
    x = preprocess(img, PRESETS["deepscale-1.0"])
    ref = np.asarray(Image.fromarray(img).resize((227, 227), Image.BILINEAR)).astype(np.float32)
    ref = ref[..., ::-1] - np.array([104, 117, 123], np.float32)
    np.testing.assert_array_equal(x, ref.transpose(2, 0, 1))


def test_preprocess_rejects_bad_images():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        preprocess(np.zeros((4, 4), np.uint8), PRESETS["torchvision"])
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        preprocess(np.zeros((4, 4, 3), np.float32), PRESETS["torchvision"])


def test_presets():
    assert set(PRESETS) == {"deepscale-1.1", "deepscale-1.0", "torchvision"}
    assert PRESETS["deepscale-1.1"].channel_order == "BGR" and PRESETS["deepscale-1.1"].mean == (0, 0, 0)
    tv = PRESETS["torchvision"]
    x = preprocess(np.full((224, 224, 3), 255, np.uint8), tv)
    np.testing.assert_allclose(x[:, 0, 0], [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225],
                               rtol=1e-5)


@pytest.mark.models
@pytest.mark.parametrize("model", ["squeezenet1.1.onnx", "squeezenet1.0.onnx"])
def test_deepscale_presets_reproduce_reference_top5(model, request, shared_images):
    path = request.getfixturevalue("squeezenet11_path" if "1.1" in model else "squeezenet10_path")
    preset = guess_preset(path)
    assert preset == {"squeezenet1.1.onnx": "deepscale-1.1", "squeezenet1.0.onnx": "deepscale-1.0"}[model]
    ref = json.loads((shared_images / "reference_top5.json").read_text())[model]
    files = image_files(shared_images)
    assert {f.name for f in files} == set(ref)
    for f in files:
        prob = run_onnxruntime(path, preprocess(load_image(f), PRESETS[preset]))["output"].ravel()
        top5 = np.argsort(-prob)[:5]
        assert top5[0] == ref[f.name]["top5"][0], f.name
        np.testing.assert_array_equal(top5, ref[f.name]["top5"])
        np.testing.assert_allclose(prob[top5], ref[f.name]["prob"], atol=2e-4)


def test_guess_preset_generated():
    tv = build_squeezenet("1.1", style="torchvision", width_mult=0.25, num_classes=4)
    assert guess_preset(tv) == "torchvision"
    assert guess_preset(import_onnx(tv)) == "torchvision"
    assert guess_preset(build_squeezenet("1.0", input_size=(227, 227), width_mult=0.25, num_classes=4)) \
        == "deepscale-1.0"
    assert guess_preset(build_squeezenet("1.1", input_size=(100, 100), width_mult=0.25, num_classes=4)) is None


def test_augment():
    img = _image(60, 80)
    a = augment(img, np.random.default_rng(1))
    b = augment(img, np.random.default_rng(1))
    c = augment(img, np.random.default_rng(2))
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, img)
    # With every random change disabled except the (full-size) crop, the image comes back unchanged.
    same = augment(img, np.random.default_rng(0), min_area=1.0, max_aspect=1.0, flip=0.0, brightness=0.0,
                   contrast=0.0)
    np.testing.assert_array_equal(same, img)
    flipped = augment(img, np.random.default_rng(0), min_area=1.0, max_aspect=1.0, flip=1.0, brightness=0.0,
                      contrast=0.0)
    np.testing.assert_array_equal(flipped, img[:, ::-1])


def test_image_files(tmp_path):
    for name in ["b.PNG", "a.jpg", "c.txt", "d.jpeg"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in image_files(tmp_path)] == ["a.jpg", "b.PNG", "d.jpeg"]
    with pytest.raises(FileNotFoundError, match="missing"):
        image_files(tmp_path / "missing")
