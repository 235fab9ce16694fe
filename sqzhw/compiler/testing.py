"""Random quantized SqueezeNets, built directly as :class:`~sqzhw.compiler.graph.QGraph` (no ONNX).

Tests of the code generator and the ISA golden model use these to run anywhere and fast: random int8
weights, random int32 biases and per-channel multipliers chosen so activations keep a sane spread
(neither all clamped nor all zero), odd channel counts via ``width_mult`` so concat padding and
channel segments are exercised.
"""

from __future__ import annotations

import math

import numpy as np

from .. import isa
from ..isa import Opcode, Unit
from ..quant import add_multipliers, quantize_multiplier
from .graph import QAdd, QConcat, QConv, QGlobalAvgPool, QGraph, QMaxPool, QParams

__all__ = ["random_qgraph", "KINDS", "pool_pads", "QGraphBuilder", "copy_program"]

KINDS = ("fire", "squeezenet1.0", "squeezenet1.1", "simple_bypass", "complex_bypass")

# (squeeze, expand) per fire module, fire2..fire9 (SqueezeNet paper, table 1).
_FIRES = [(16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256)]


def pool_pads(size: int, kernel: int = 3, stride: int = 2) -> tuple[int, int]:
    """``(output size, extra bottom/right pad)`` of a ceil-mode pool without explicit padding."""
    out = -(-(size - kernel) // stride) + 1
    return out, max(0, (out - 1) * stride + kernel - size)


class QGraphBuilder:
    """Builds a random QGraph layer by layer (``conv``, ``maxpool``, ``fire``, ``add``, then ``gap``)."""

    def __init__(self, name: str, input_shape: tuple[int, int, int], seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.shapes: dict[str, tuple[int, int, int]] = {"input": input_shape}
        zp = int(self.rng.integers(-20, 21))
        self.input_q = QParams(float(self.rng.uniform(0.01, 0.05)), zp)
        self.tensor_q: dict[str, QParams] = {"input": self.input_q}
        self.name = name

    def relu_q(self) -> QParams:
        return QParams(float(self.rng.uniform(0.02, 0.2)), int(self.rng.integers(-128, -100)))

    def conv(self, name: str, src: str, cout: int, k: int, stride: int = 1, pad: int = 0,
             relu: bool = True, out_q: QParams | None = None) -> str:
        rng = self.rng
        cin, h, w = self.shapes[src]
        in_q = self.tensor_q[src]
        n = cin * k * k
        weight = rng.integers(-127, 128, (cout, cin, k, k)).astype(np.int8)
        # spread of sum((x - zp) * w) for activations of spread ~15 and uniform int8 weights
        acc_std = math.sqrt(n) * 73.0 * 15.0
        bias = np.round(rng.normal(0, 0.3 * acc_std, cout)).astype(np.int32)
        target = rng.uniform(20.0, 45.0, cout)
        mult, shift = zip(*(quantize_multiplier(float(t / acc_std)) for t in target))
        out_q = out_q or (self.relu_q() if relu else QParams(float(rng.uniform(0.02, 0.2)),
                                                             int(rng.integers(-20, 21))))
        out = f"{name}_out"
        oh = (h + 2 * pad - k) // stride + 1
        ow = (w + 2 * pad - k) // stride + 1
        self.nodes.append(QConv(name, src, out, weight, rng.uniform(0.001, 0.01, cout), bias,
                                np.array(mult, np.int64), np.array(shift, np.int64), (stride, stride),
                                (pad, pad, pad, pad), relu, in_q, out_q))
        self.shapes[out], self.tensor_q[out] = (cout, oh, ow), out_q
        return out

    def maxpool(self, name: str, src: str) -> str:
        c, h, w = self.shapes[src]
        oh, pb = pool_pads(h)
        ow, pr = pool_pads(w)
        out = f"{name}_out"
        q = self.tensor_q[src]
        self.nodes.append(QMaxPool(name, src, out, (3, 3), (2, 2), (0, 0, pb, pr), q))
        self.shapes[out], self.tensor_q[out] = (c, oh, ow), q
        return out

    def fire(self, name: str, src: str, squeeze: int, expand: int) -> str:
        s = self.conv(f"{name}/squeeze1x1", src, squeeze, 1)
        q = self.relu_q()
        e1 = self.conv(f"{name}/expand1x1", s, expand, 1, out_q=q)
        e3 = self.conv(f"{name}/expand3x3", s, expand, 3, pad=1, out_q=q)
        out = f"{name}/concat"
        _, h, w = self.shapes[e1]
        self.nodes.append(QConcat(f"{name}/concat", [e1, e3], out, q))
        self.shapes[out], self.tensor_q[out] = (2 * expand, h, w), q
        return out

    def add(self, name: str, a: str, b: str) -> str:
        qa, qb = self.tensor_q[a], self.tensor_q[b]
        out_q = QParams(max(qa.scale, qb.scale) * float(self.rng.uniform(1.2, 2.0)),
                        int(self.rng.integers(-128, -90)))
        ka, kb, m, n = add_multipliers(qa.scale, qb.scale, out_q.scale)
        out = f"{name}_out"
        self.nodes.append(QAdd(name, [a, b], out, ka, kb, m, n, False, qa, qb, out_q))
        self.shapes[out], self.tensor_q[out] = self.shapes[a], out_q
        return out

    def gap(self, src: str) -> QGraph:
        out = "pool10_out"
        self.nodes.append(QGlobalAvgPool("pool10", src, out, self.tensor_q[src]))
        c = self.shapes[src][0]
        self.shapes[out] = (c, 1, 1)
        return QGraph(self.name, "input", self.shapes["input"], self.input_q, out, self.nodes,
                      self.shapes, self.tensor_q)


def random_qgraph(kind: str = "squeezenet1.1", input_size: int | tuple[int, int] = 64,
                  width_mult: float = 1.0, num_classes: int = 1000, seed: int = 0,
                  in_channels: int = 3) -> QGraph:
    """A random quantized network of the given topology.

    Parameters
    ----------
    kind : str
        ``"fire"`` (one fire module on an ``in_channels`` input, then a classifier conv and the
        pool), ``"squeezenet1.0"``, ``"squeezenet1.1"``, ``"simple_bypass"`` or ``"complex_bypass"``
        (SqueezeNet 1.0 with the paper's bypass connections).
    input_size : int or (int, int)
        Input height and width.
    width_mult : float
        Scales every channel count (rounded, at least 1): odd counts exercise concat padding.
    num_classes : int
        Output channels of conv10.
    seed : int
    in_channels : int
        Input channels (3 for images).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; kinds: {KINDS}")
    h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)

    def ch(c: int) -> int:
        return max(1, int(round(c * width_mult)))

    b = QGraphBuilder(f"random-{kind}", (in_channels, h, w), seed)
    if kind == "fire":
        x = b.fire("fire2", "input", ch(16), ch(64))
        x = b.conv("conv10", x, num_classes, 1)
        return b.gap(x)
    v11 = kind == "squeezenet1.1"
    x = b.conv("conv1", "input", ch(64 if v11 else 96), 3 if v11 else 7, stride=2)
    x = b.maxpool("pool1", x)
    pools_after = {3, 5} if v11 else {4, 8}
    for i, (s, e) in enumerate(_FIRES):
        idx = i + 2
        fire_in = x
        x = b.fire(f"fire{idx}", x, ch(s), ch(e))
        if kind in ("simple_bypass", "complex_bypass") and idx in (3, 5, 7, 9):
            x = b.add(f"bypass{idx}", x, fire_in)
        elif kind == "complex_bypass" and idx in (2, 4, 6, 8):
            by = b.conv(f"bypass{idx}/conv1x1", fire_in, b.shapes[x][0], 1, relu=False)
            x = b.add(f"bypass{idx}", x, by)
        if idx in pools_after:
            x = b.maxpool(f"pool{idx}", x)
    x = b.conv("conv10", x, num_classes, 1)
    return b.gap(x)


def copy_program(src: int, dst: int, h: int, w: int) -> list[int]:
    """A 4-instruction program for link and driver tests: LOAD ``h*w`` activation entries from
    ``src``, MAXPOOL 1x1 (a copy to OUT), STORE them to ``dst``, END."""
    return [
        isa.encode(Opcode.LOAD, target=isa.LoadTarget.ACT, sram_addr=0, dram_addr=src, rows=1,
                   row_len=h * w, dram_stride=0),
        isa.encode(Opcode.MAXPOOL, wait={Unit.LOAD}, in_addr=0, in_h=h, in_w=w, blocks=1, out_h=h,
                   out_w=w, kernel=1, stride=1, out_addr=0),
        isa.encode(Opcode.STORE, wait={Unit.COMPUTE}, source=isa.StoreSource.OUT, sram_addr=0,
                   dram_addr=dst, rows=1, row_len=h * w, dram_stride=0),
        isa.encode(Opcode.END, wait={Unit.LOAD, Unit.COMPUTE, Unit.STORE}),
    ]
