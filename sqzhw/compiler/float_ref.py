"""The float reference: every tensor of a :class:`~sqzhw.compiler.graph.Graph`, in NumPy.

:func:`run_float` is what calibration (:mod:`sqzhw.compiler.quantize`) and the accuracy tests use as
"the float network"; :func:`run_onnxruntime` runs the original ONNX model so the two can be compared
(the front end is right when they agree to ~1e-4).

Convolution is im2col + one matrix product per layer (``kh*kw`` strided slices stacked, so no Python
loop over pixels); SqueezeNet 1.1 at 227x227 takes ~0.1-0.3 s on one core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from .graph import Add, Concat, Conv, GlobalAvgPool, Graph, MaxPool

__all__ = ["FloatRefError", "run_float", "run_onnxruntime", "conv2d", "maxpool2d", "softmax"]


class FloatRefError(ValueError):
    """The input or the graph cannot be evaluated (wrong input shape, unknown node, shape mismatch)."""


def _out_size(size: int, kernel: int, stride: int, pad_a: int, pad_b: int) -> int:
    return (size + pad_a + pad_b - kernel) // stride + 1


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
           stride: tuple[int, int] = (1, 1), pads: tuple[int, int, int, int] = (0, 0, 0, 0),
           pad_value: float = 0.0) -> np.ndarray:
    """2-D convolution (cross-correlation, groups 1) of one ``(C, H, W)`` image.

    Parameters
    ----------
    x : ndarray (C, H, W)
    weight : ndarray (Cout, C, kh, kw)
    bias : ndarray (Cout,) or None
    stride : (sy, sx)
    pads : (top, left, bottom, right)
    pad_value : value written into the padding (the integer models pad with the zero point).

    Returns
    -------
    ndarray (Cout, Ho, Wo), dtype of ``np.result_type(x, weight)``.
    """
    cout, cin, kh, kw = weight.shape
    c, h, w = x.shape
    if c != cin:
        raise FloatRefError(f"conv2d: input has {c} channels, weight expects {cin}")
    top, left, bottom, right = pads
    sy, sx = stride
    ho = _out_size(h, kh, sy, top, bottom)
    wo = _out_size(w, kw, sx, left, right)
    if ho < 1 or wo < 1:
        raise FloatRefError(f"conv2d: kernel {kh}x{kw} does not fit a {h}x{w} input with pads {pads}")
    if any(pads):
        xp = np.full((c, h + top + bottom, w + left + right), pad_value, dtype=x.dtype)
        xp[:, top:top + h, left:left + w] = x
    else:
        xp = x
    if kh == 1 and kw == 1:
        cols = xp[:, :sy * (ho - 1) + 1:sy, :sx * (wo - 1) + 1:sx].reshape(c, ho * wo)
    else:
        # (C, kh, kw, Ho, Wo) matches weight.reshape(Cout, C*kh*kw)'s (c, ky, kx) order.
        cols = np.empty((c, kh, kw, ho, wo), dtype=xp.dtype)
        for ky in range(kh):
            for kx in range(kw):
                cols[:, ky, kx] = xp[:, ky:ky + sy * (ho - 1) + 1:sy, kx:kx + sx * (wo - 1) + 1:sx]
        cols = cols.reshape(c * kh * kw, ho * wo)
    out = weight.reshape(cout, -1) @ cols
    if bias is not None:
        out += bias.reshape(cout, 1).astype(out.dtype, copy=False)
    return out.reshape(cout, ho, wo)


def maxpool2d(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
              pads: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """Max-pool of one ``(C, H, W)`` image; padded positions never win (they hold the dtype's
    minimum). ``pads`` are ``(top, left, bottom, right)`` and include any ``ceil_mode`` extra."""
    c, h, w = x.shape
    kh, kw = kernel
    sy, sx = stride
    top, left, bottom, right = pads
    ho = _out_size(h, kh, sy, top, bottom)
    wo = _out_size(w, kw, sx, left, right)
    if ho < 1 or wo < 1:
        raise FloatRefError(f"maxpool2d: kernel {kh}x{kw} does not fit a {h}x{w} input with pads {pads}")
    if any(pads):
        low = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
        xp = np.full((c, h + top + bottom, w + left + right), low, dtype=x.dtype)
        xp[:, top:top + h, left:left + w] = x
    else:
        xp = x
    out = None
    for ky in range(kh):
        for kx in range(kw):
            win = xp[:, ky:ky + sy * (ho - 1) + 1:sy, kx:kx + sx * (wo - 1) + 1:sx]
            out = win.copy() if out is None else np.maximum(out, win, out=out)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over all elements (the class axis of a flattened output)."""
    z = np.asarray(logits, dtype=np.float64).ravel()
    e = np.exp(z - z.max())
    return (e / e.sum()).astype(np.float32)


def run_float(graph: Graph, x: np.ndarray, dtype=np.float32) -> dict[str, np.ndarray]:
    """Evaluate every tensor of a float graph on one image.

    Parameters
    ----------
    graph : Graph
        The float IR from :func:`sqzhw.compiler.frontend.import_onnx`.
    x : ndarray (C, H, W)
        The preprocessed input (a leading batch axis of 1 is accepted and dropped).
    dtype : numpy dtype
        Arithmetic precision, float32 (default, like onnxruntime) or float64.

    Returns
    -------
    dict[str, ndarray]
        Every tensor by its IR name, ``(C, H, W)``, including ``graph.input``. ``graph.output`` is
        the global pool's ``(classes, 1, 1)``; no softmax is applied (see :func:`softmax` and
        ``graph.softmax``).
    """
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if tuple(x.shape) != tuple(graph.input_shape):
        raise FloatRefError(f"graph {graph.name!r}: input {graph.input!r} must have shape "
                            f"{tuple(graph.input_shape)} (C, H, W), got {x.shape}")
    env: dict[str, np.ndarray] = {graph.input: x.astype(dtype, copy=False)}

    def get(node, name: str) -> np.ndarray:
        try:
            return env[name]
        except KeyError:
            raise FloatRefError(f"node {node.name!r} ({node.op}): input tensor {name!r} is not produced "
                                f"by an earlier node") from None

    for node in graph.nodes:
        if isinstance(node, Conv):
            y = conv2d(get(node, node.input), node.weight.astype(dtype, copy=False),
                       node.bias.astype(dtype, copy=False), node.stride, node.pads)
            if node.relu:
                np.maximum(y, 0, out=y)
        elif isinstance(node, MaxPool):
            y = maxpool2d(get(node, node.input), node.kernel, node.stride, node.pads)
        elif isinstance(node, Concat):
            y = np.concatenate([get(node, i) for i in node.inputs], axis=0)
        elif isinstance(node, Add):
            a, b = (get(node, i) for i in node.inputs)
            if a.shape != b.shape:
                raise FloatRefError(f"node {node.name!r} (Add): input shapes {a.shape} and {b.shape} differ")
            y = a + b
            if node.relu:
                np.maximum(y, 0, out=y)
        elif isinstance(node, GlobalAvgPool):
            t = get(node, node.input)
            y = t.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(dtype)
        else:
            raise FloatRefError(f"node {getattr(node, 'name', '?')!r}: unknown IR node type "
                                f"{type(node).__name__}")
        expected = graph.shapes.get(node.output)
        if expected is not None and tuple(y.shape) != tuple(expected):
            raise FloatRefError(f"node {node.name!r} ({node.op}): computed shape {y.shape} for "
                                f"{node.output!r} but the graph says {tuple(expected)}")
        env[node.output] = y
    return env


def run_onnxruntime(model, x_chw: np.ndarray, outputs: Iterable[str] | None = None,
                    logits: bool = False) -> dict[str, np.ndarray]:
    """Run an ONNX model in onnxruntime on one ``(C, H, W)`` image.

    Parameters
    ----------
    model : str, Path or onnx.ModelProto
    x_chw : ndarray (C, H, W) float32 (a leading batch axis of 1 is accepted).
    outputs : names of intermediate tensors to return as well (added as extra graph outputs).
    logits : also return the pre-softmax logits under the key ``"logits"`` when the model ends in a
        Softmax (the Softmax's input is added as a graph output).

    Returns
    -------
    dict[str, ndarray]
        The model's own outputs by name (batch axis kept, as onnxruntime returns them), the requested
        intermediate tensors, and ``"logits"`` if asked for. ``"output"`` is always the first output.
    """
    import onnx
    import onnxruntime as ort

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model))
    else:
        m = onnx.ModelProto()
        m.CopyFrom(model)
        model = m
    g = model.graph
    wanted = list(outputs or [])
    logits_name = None
    if logits:
        producer = {o: n for n in g.node for o in n.output}
        last = producer.get(g.output[0].name)
        # Look through the Q/DQ pair a QDQ model puts after its Softmax.
        while last is not None and last.op_type in ("QuantizeLinear", "DequantizeLinear", "Identity"):
            last = producer.get(last.input[0])
        if last is not None and last.op_type == "Softmax":
            logits_name = last.input[0]
            wanted.append(logits_name)
    present = {o.name for o in g.output}
    produced = {o for n in g.node for o in n.output} | {i.name for i in g.input}
    for name in wanted:
        if name not in produced:
            raise ValueError(f"run_onnxruntime: model {g.name!r} has no tensor {name!r}")
        if name not in present:
            g.output.append(onnx.ValueInfoProto(name=name))
            present.add(name)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # Keep every requested intermediate tensor: fusions could remove it.
    if wanted:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.asarray(x_chw, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    inp = sess.get_inputs()[0]
    names = [o.name for o in sess.get_outputs()]
    res = sess.run(names, {inp.name: x})
    out = dict(zip(names, res))
    out["output"] = res[0]
    if logits_name is not None:
        out["logits"] = out[logits_name]
    return out
