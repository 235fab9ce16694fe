"""The integer layer reference: every quantized op of a :class:`~sqzhw.compiler.graph.QGraph` in NumPy.

This module knows the numbers, not the ISA: tensors are int8 ``(C, H, W)`` arrays with per-tensor
:class:`~sqzhw.compiler.graph.QParams`, weights int8 per output channel, accumulators int32. The ISA
golden model and the RTL must reproduce these results bit for bit.

Conventions (the bit-exact contract)
------------------------------------
* Convolution: ``acc = sum((x - zp_in) * w) + bias`` computed exactly (int64, or float matmul where
  every partial sum is an integer below 2**24 / 2**53 and hence exact), then wrapped to int32 as a
  32-bit adder would (:func:`sqzhw.quant.wrap_int32`) and requantized with
  :func:`sqzhw.quant.requantize`, the only requantization (round half toward +infinity). Padding
  inserts the input zero point, i.e. a zero after the subtraction.
* Max-pool: padded positions never win (they hold -128, the smallest int8, and every window is
  checked to contain at least one real pixel, so the result is the max over real pixels).
* Concat: a channel offset; all inputs must share the output's QParams.
* Add: ``acc = ka*(a - zp_a) + kb*(b - zp_b)`` (int32) then :func:`~sqzhw.quant.requantize`.
* Global average pool: the int32 per-channel sums of the raw int8 values; the host computes
  ``(sum - N*zp) * scale / N``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..compiler.graph import QAdd, QConcat, QConv, QGlobalAvgPool, QGraph, QMaxPool, QNode, QParams
from ..quant import requantize, wrap_int32

__all__ = ["conv", "maxpool", "concat", "add", "global_sum_pool", "run_quantized", "dequantize_output",
           "quantize_input", "accumulator_bound", "check_accumulator", "AccumulatorOverflowError",
           "ACC_BITS"]

#: Accumulator width of the engine (``AccelConfig.acc_bits``; only 32 is implemented).
ACC_BITS = 32


class AccumulatorOverflowError(ValueError):
    """A convolution whose accumulator (or folded bias) can leave the int32 range; names the layer."""


def _where(node) -> str:
    return f"node {node.name!r} ({node.op})"


def _check_act(x: np.ndarray, node, what: str = "input") -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise TypeError(f"{_where(node)}: {what} must be int8, got {x.dtype}")
    if x.ndim != 3:
        raise ValueError(f"{_where(node)}: {what} must be (C, H, W), got shape {x.shape}")
    return x


def _max_offset(zero_point: int) -> int:
    """Largest ``|q - zp|`` over int8 ``q``."""
    return max(127 - zero_point, zero_point + 128)


def accumulator_bound(qconv: QConv) -> int:
    """Largest ``|acc|`` any int8 input can produce in ``qconv``, bias included.

    ``max_c (sum_k |w_ck| * max_q |q - zp_in| + |bias_c|)``. The engine folds the zero point into
    the bias (``bias - zp_in * sum(w)``) and accumulates ``sum(q * w)`` with wrap-around; the bound
    on the final value is what matters, because int32 wrap-around is exact modular arithmetic as
    long as the true result fits.
    """
    w = np.asarray(qconv.weight, dtype=np.int64).reshape(qconv.weight.shape[0], -1)
    per_channel = np.abs(w).sum(axis=1) * _max_offset(qconv.in_q.zero_point) \
        + np.abs(np.asarray(qconv.bias, dtype=np.int64))
    return int(per_channel.max(initial=0))


def check_accumulator(qconv: QConv, acc_bits: int = ACC_BITS) -> None:
    """Raise :class:`AccumulatorOverflowError` naming the layer if its deepest reduction plus bias can
    leave the signed ``acc_bits`` range.

    This also covers the engine's zero-point-folded bias ``bias - zp_in * sum(w)``: since
    ``max|q - zp_in| >= |zp_in|``, its magnitude never exceeds :func:`accumulator_bound`.
    """
    lim = 1 << (acc_bits - 1)
    bound = accumulator_bound(qconv)
    w = np.asarray(qconv.weight, dtype=np.int64).reshape(qconv.weight.shape[0], -1)
    bias = np.asarray(qconv.bias, dtype=np.int64)
    cin, kh, kw = qconv.weight.shape[1:]
    if bound >= lim:
        c = int(np.argmax(np.abs(w).sum(axis=1) * _max_offset(qconv.in_q.zero_point) + np.abs(bias)))
        raise AccumulatorOverflowError(
            f"{_where(qconv)}: the accumulator can reach {bound} (output channel {c}, reduction of "
            f"{cin}x{kh}x{kw}, bias {int(bias[c])}), beyond the int{acc_bits} range +-{lim}")


def _out_size(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int) -> int:
    return (size + pad_lo + pad_hi - kernel) // stride + 1


def conv(x_q: np.ndarray, node: QConv) -> np.ndarray:
    """Integer convolution (see the module docstring for the exact arithmetic).

    Parameters
    ----------
    x_q : ndarray of int8, (Cin, H, W)
    node : QConv

    Returns
    -------
    ndarray of int8, (Cout, Hout, Wout)
    """
    x = _check_act(x_q, node)
    weight = np.asarray(node.weight)
    cout, cin, kh, kw = weight.shape
    if x.shape[0] != cin:
        raise ValueError(f"{_where(node)}: input has {x.shape[0]} channels, the weights expect {cin}")
    top, left, bottom, right = node.pads
    sh, sw = node.stride
    _, h, w = x.shape
    hout, wout = _out_size(h, kh, sh, top, bottom), _out_size(w, kw, sw, left, right)
    if hout <= 0 or wout <= 0:
        raise ValueError(f"{_where(node)}: input {x.shape} is smaller than the {kh}x{kw} kernel")
    zp = node.in_q.zero_point
    # Exact in float32 when every partial sum is an integer below 2**24, else float64 (2**53).
    wsum = int(np.abs(weight.astype(np.int64)).reshape(cout, -1).sum(axis=1).max(initial=0))
    bound = wsum * _max_offset(zp)
    dtype = np.float32 if bound < 1 << 24 else np.float64
    xs = x.astype(dtype) - dtype(zp)
    if any(node.pads):
        xs = np.pad(xs, ((0, 0), (top, bottom), (left, right)))  # zeros: the zero point, subtracted
    if kh == 1 and kw == 1:
        cols = xs[:, : (hout - 1) * sh + 1 : sh, : (wout - 1) * sw + 1 : sw].reshape(cin, hout * wout)
    else:
        # (Cin, kh, kw, Hout, Wout): the weights' (c, ky, kx) order, one strided slice per tap.
        cols = np.empty((cin, kh, kw, hout, wout), dtype)
        for ky in range(kh):
            for kx in range(kw):
                cols[:, ky, kx] = xs[:, ky:ky + (hout - 1) * sh + 1:sh, kx:kx + (wout - 1) * sw + 1:sw]
        cols = cols.reshape(cin * kh * kw, hout * wout)
    acc = weight.reshape(cout, -1).astype(dtype) @ cols
    acc = acc.astype(np.int64) + np.asarray(node.bias, dtype=np.int64)[:, None]
    y = requantize(wrap_int32(acc), np.asarray(node.multiplier)[:, None], np.asarray(node.shift)[:, None],
                   node.out_q.zero_point, node.relu)
    return y.reshape(cout, hout, wout)


def maxpool(x_q: np.ndarray, node: QMaxPool) -> np.ndarray:
    """Max-pool on int8; padded positions never win (see the module docstring)."""
    x = _check_act(x_q, node)
    c, h, w = x.shape
    (kh, kw), (sh, sw) = node.kernel, node.stride
    top, left, bottom, right = node.pads
    hout, wout = _out_size(h, kh, sh, top, bottom), _out_size(w, kw, sw, left, right)
    if hout <= 0 or wout <= 0:
        raise ValueError(f"{_where(node)}: input {x.shape} is smaller than the {kh}x{kw} window")
    # Every window must hold a real pixel, else the result would be a padding value.
    if (hout - 1) * sh - top >= h or (wout - 1) * sw - left >= w or kh <= top or kw <= left:
        raise ValueError(f"{_where(node)}: pads {node.pads} make a window that holds only padding")
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right)), constant_values=-128)
    out = np.full((c, hout, wout), -128, np.int8)
    for ky in range(kh):
        for kx in range(kw):
            np.maximum(out, xp[:, ky:ky + (hout - 1) * sh + 1:sh, kx:kx + (wout - 1) * sw + 1:sw], out=out)
    return out


def concat(xs: list[np.ndarray], node: QConcat, input_q: list[QParams] | None = None) -> np.ndarray:
    """Channel concatenation; ``input_q`` (the inputs' QParams, when known) must all equal ``node.q``."""
    arrays = [_check_act(x, node, f"input {i}") for i, x in enumerate(xs)]
    if input_q is not None:
        for name, q in zip(node.inputs, input_q):
            if q != node.q:
                raise ValueError(f"{_where(node)}: input {name!r} has {q}, the output {node.q}; concat "
                                 f"inputs must share the output's quantization")
    if len({a.shape[1:] for a in arrays}) != 1:
        raise ValueError(f"{_where(node)}: inputs have different spatial shapes "
                         f"{[a.shape for a in arrays]}")
    return np.concatenate(arrays, axis=0)


def add(a_q: np.ndarray, b_q: np.ndarray, node: QAdd) -> np.ndarray:
    """Bypass add: ``requantize(ka*(a - zp_a) + kb*(b - zp_b), M, n, zp_out, relu)``."""
    a = _check_act(a_q, node, "input a").astype(np.int64)
    b = _check_act(b_q, node, "input b").astype(np.int64)
    if a.shape != b.shape:
        raise ValueError(f"{_where(node)}: inputs have shapes {a.shape} and {b.shape}")
    acc = node.ka * (a - node.a_q.zero_point) + node.kb * (b - node.b_q.zero_point)
    return requantize(wrap_int32(acc), node.multiplier, node.shift, node.out_q.zero_point, node.relu)


def global_sum_pool(x_q: np.ndarray, node: QGlobalAvgPool | None = None) -> np.ndarray:
    """Per-channel int32 sums of the raw int8 values, shape ``(C,)``."""
    x = np.asarray(x_q)
    if x.dtype != np.int8 or x.ndim != 3:
        where = _where(node) if node is not None else "global_sum_pool"
        raise ValueError(f"{where}: input must be int8 (C, H, W), got {x.dtype} {x.shape}")
    return wrap_int32(x.astype(np.int64).sum(axis=(1, 2)))


def quantize_input(x: np.ndarray, q: QParams) -> np.ndarray:
    """Float network input to int8: ``clip(round_half_even(x / scale) + zp, -128, 127)``."""
    q_x = np.round(np.asarray(x, dtype=np.float64) / q.scale) + q.zero_point
    return np.clip(q_x, -128, 127).astype(np.int8)


def dequantize_output(sums: np.ndarray, qgraph: QGraph) -> np.ndarray:
    """The final global-average-pool sums as float logits: ``(sum - N*zp) * scale / N``."""
    node = qgraph.nodes[-1]
    if not isinstance(node, QGlobalAvgPool) or node.output != qgraph.output:
        raise ValueError(f"graph {qgraph.name!r} does not end in a global average pool")
    _, h, w = qgraph.shapes[node.input]
    n = h * w
    return (np.asarray(sums, dtype=np.float64) - n * node.in_q.zero_point) * node.in_q.scale / n


def run_quantized(qgraph: QGraph, x_q: np.ndarray,
                  progress: Callable[[int, int, str], None] | None = None) -> dict[str, np.ndarray]:
    """Run a quantized graph on an int8 ``(C, H, W)`` input.

    Returns every tensor by name (the input included): int8 ``(C, H, W)``, and int32 ``(C,)`` for the
    global average pool. Each node's input QParams are checked against the producer's.
    """
    x = np.asarray(x_q)
    if x.dtype != np.int8:
        raise TypeError(f"graph {qgraph.name!r}: the input must be int8, got {x.dtype}")
    if tuple(x.shape) != tuple(qgraph.input_shape):
        raise ValueError(f"graph {qgraph.name!r}: input shape {x.shape}, expected {qgraph.input_shape}")
    values: dict[str, np.ndarray] = {qgraph.input: x}
    qs = dict(qgraph.tensor_q)
    qs.setdefault(qgraph.input, qgraph.input_q)

    def fetch(node: QNode, name: str, expect: QParams | None) -> np.ndarray:
        if name not in values:
            raise ValueError(f"{_where(node)}: input tensor {name!r} is not computed before it")
        if expect is not None and name in qs and qs[name] != expect:
            raise ValueError(f"{_where(node)}: expects input {name!r} quantized as {expect}, the graph "
                             f"has {qs[name]}")
        return values[name]

    total = len(qgraph.nodes)
    for i, node in enumerate(qgraph.nodes):
        if isinstance(node, QConv):
            out = conv(fetch(node, node.input, node.in_q), node)
        elif isinstance(node, QMaxPool):
            out = maxpool(fetch(node, node.input, node.q), node)
        elif isinstance(node, QConcat):
            out = concat([fetch(node, n, node.q) for n in node.inputs], node)
        elif isinstance(node, QAdd):
            out = add(fetch(node, node.inputs[0], node.a_q), fetch(node, node.inputs[1], node.b_q), node)
        elif isinstance(node, QGlobalAvgPool):
            out = global_sum_pool(fetch(node, node.input, node.in_q), node)
        else:
            raise TypeError(f"node {getattr(node, 'name', '?')!r}: unsupported quantized op "
                            f"{type(node).__name__}")
        values[node.output] = out
        if progress is not None:
            progress(i, total, node.name)
    return values
