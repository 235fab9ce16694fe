"""sqzhw.compiler.float_ref: NumPy float reference against naive loops and onnxruntime."""

import itertools
import time

import numpy as np
import pytest

from sqzhw.compiler.float_ref import (FloatRefError, conv2d, maxpool2d, run_float, run_onnxruntime,
                                      softmax)
from sqzhw.compiler.frontend import import_onnx
from sqzhw.models import build_squeezenet


def _naive_conv(x, w, b, stride, pads):
    c, h, wd = x.shape
    cout, _, kh, kw = w.shape
    t, l, bo, r = pads
    xp = np.zeros((c, h + t + bo, wd + l + r))
    xp[:, t:t + h, l:l + wd] = x
    ho = (h + t + bo - kh) // stride[0] + 1
    wo = (wd + l + r - kw) // stride[1] + 1
    out = np.zeros((cout, ho, wo))
    for o in range(cout):
        for y in range(ho):
            for xx in range(wo):
                win = xp[:, y * stride[0]:y * stride[0] + kh, xx * stride[1]:xx * stride[1] + kw]
                out[o, y, xx] = (win * w[o]).sum() + b[o]
    return out


def _naive_maxpool(x, k, stride, pads):
    c, h, wd = x.shape
    t, l, bo, r = pads
    xp = np.full((c, h + t + bo, wd + l + r), -np.inf)
    xp[:, t:t + h, l:l + wd] = x
    ho = (h + t + bo - k[0]) // stride[0] + 1
    wo = (wd + l + r - k[1]) // stride[1] + 1
    out = np.zeros((c, ho, wo))
    for y in range(ho):
        for xx in range(wo):
            out[:, y, xx] = xp[:, y * stride[0]:y * stride[0] + k[0],
                               xx * stride[1]:xx * stride[1] + k[1]].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("k,stride,pads", [(1, 1, (0, 0, 0, 0)), (1, 2, (0, 0, 0, 0)), (3, 1, (1, 1, 1, 1)),
                                           (3, 2, (0, 1, 1, 0)), (7, 2, (0, 0, 0, 0)), (5, 1, (2, 0, 1, 2))])
def test_conv2d_matches_loops(k, stride, pads):
    rng = np.random.default_rng(k * 10 + stride)
    x = rng.standard_normal((5, 11, 9))
    w = rng.standard_normal((4, 5, k, k))
    b = rng.standard_normal(4)
    got = conv2d(x, w, b, (stride, stride), pads)
    np.testing.assert_allclose(got, _naive_conv(x, w, b, (stride, stride), pads), rtol=1e-10, atol=1e-10)


def test_conv2d_integer_pad_value_is_exact():
    # The integer reference pads with the zero point: check pad_value is used and integers stay exact.
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (3, 6, 6)).astype(np.int64)
    w = rng.integers(-127, 128, (2, 3, 3, 3)).astype(np.int64)
    got = conv2d(x, w, None, (1, 1), (1, 1, 1, 1), pad_value=7)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=7)
    np.testing.assert_array_equal(got, conv2d(xp, w, None))
    assert got.dtype == np.int64


@pytest.mark.parametrize("k,s,pads", [(3, 2, (0, 0, 1, 1)), (2, 2, (0, 0, 0, 0)), (3, 1, (1, 1, 1, 1))])
def test_maxpool_matches_loops(k, s, pads):
    x = np.random.default_rng(1).standard_normal((3, 10, 7))
    np.testing.assert_array_equal(maxpool2d(x, (k, k), (s, s), pads), _naive_maxpool(x, (k, k), (s, s), pads))


def test_maxpool_int8_padding_never_wins():
    x = np.full((1, 4, 4), -128, np.int8)
    out = maxpool2d(x, (3, 3), (2, 2), (0, 0, 1, 1))
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, np.full((1, 2, 2), -128, np.int8))


def test_softmax_sums_to_one():
    p = softmax(np.array([1000.0, 1001.0, 999.0]))
    assert abs(p.sum() - 1) < 1e-6 and p.argmax() == 1


def _check_against_ort(model, x, rtol=1e-4):
    g = import_onnx(model)
    env = run_float(g, x)
    out = env[g.output].ravel()
    ort = run_onnxruntime(model, x, logits=True)
    ref = ort["output"].ravel()
    if g.softmax:
        np.testing.assert_allclose(env[g.output].ravel(), ort["logits"].ravel(), rtol=rtol,
                                   atol=rtol * np.abs(ort["logits"]).max())
        out = softmax(out)
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    assert out.argmax() == ref.argmax()
    return g, env


@pytest.mark.models
def test_shared_squeezenet11_matches_onnxruntime(squeezenet11_path):
    x = np.random.default_rng(0).uniform(0, 255, (3, 227, 227)).astype(np.float32)
    g, env = _check_against_ort(squeezenet11_path, x)
    # Intermediate tensors too (one fire output, the last pool).
    names = ["fire5/concat", "pool5"]
    ort = run_onnxruntime(squeezenet11_path, x, outputs=names)
    for n in names:
        np.testing.assert_allclose(env[n], ort[n][0], rtol=1e-4, atol=1e-4 * np.abs(ort[n]).max())


@pytest.mark.models
def test_shared_squeezenet10_matches_onnxruntime(squeezenet10_path):
    x = (np.random.default_rng(1).uniform(0, 255, (3, 227, 227)) - 117).astype(np.float32)
    _check_against_ort(squeezenet10_path, x)


VARIANTS = list(itertools.product(["1.0", "1.1"], ["deepscale", "torchvision", "zoo"], [None, "simple", "complex"]))


@pytest.mark.parametrize("version,style,bypass", VARIANTS)
def test_generated_variants_match_onnxruntime(version, style, bypass):
    size = (83, 91) if version == "1.1" else (99, 107)
    model = build_squeezenet(version, bypass, style, input_size=size, num_classes=10, width_mult=0.25, seed=3)
    x = np.random.default_rng(2).standard_normal((3, *size)).astype(np.float32)
    if style == "deepscale":
        x = x * 60 + 120
    _check_against_ort(model, x)


@pytest.mark.parametrize("opset", [11, 17])
@pytest.mark.parametrize("avgpool,flatten", [("global", "flatten"), ("average", "reshape")])
def test_torchvision_opsets_match_onnxruntime(opset, avgpool, flatten):
    model = build_squeezenet("1.1", "simple", "torchvision", input_size=(64, 64), num_classes=8,
                             width_mult=0.25, opset=opset, avgpool=avgpool, flatten=flatten)
    _check_against_ort(model, np.random.default_rng(4).standard_normal((3, 64, 64)).astype(np.float32))


def test_full_size_squeezenet11_is_fast():
    g = import_onnx(build_squeezenet("1.1", style="deepscale", input_size=(227, 227)))
    x = np.random.default_rng(0).uniform(0, 255, (3, 227, 227)).astype(np.float32)
    run_float(g, x)  # warm up BLAS
    t = time.perf_counter()
    env = run_float(g, x)
    elapsed = time.perf_counter() - t
    assert env[g.output].shape == (1000, 1, 1)
    assert elapsed < 1.0, f"run_float took {elapsed:.2f} s"


def test_float64_and_batch_axis():
    model = build_squeezenet("1.1", input_size=(48, 48), num_classes=4, width_mult=0.25)
    g = import_onnx(model)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 48, 48)).astype(np.float32)
    a = run_float(g, x)[g.output]
    b = run_float(g, x[0], dtype=np.float64)[g.output]
    assert b.dtype == np.float64
    np.testing.assert_allclose(a, b, rtol=1e-4)
    assert set(g.shapes) <= set(run_float(g, x))


def test_wrong_input_shape_is_a_clear_error():
    g = import_onnx(build_squeezenet("1.1", input_size=(48, 48), num_classes=4, width_mult=0.25))
    with pytest.raises(FloatRefError, match=r"input 'data' must have shape \(3, 48, 48\)"):
        run_float(g, np.zeros((3, 50, 48), np.float32))


def test_run_onnxruntime_unknown_tensor():
    model = build_squeezenet("1.1", input_size=(48, 48), num_classes=4, width_mult=0.25)
    with pytest.raises(ValueError, match="no tensor 'nope'"):
        run_onnxruntime(model, np.zeros((3, 48, 48), np.float32), outputs=["nope"])
