"""The compiler's intermediate representation: a float graph and its quantized twin.

The ONNX front end (:mod:`sqzhw.compiler.frontend`) produces a :class:`Graph` of float nodes with
ReLUs fused and host-side ops (Dropout, Flatten, Reshape, Softmax) resolved. The quantizer
(:mod:`sqzhw.compiler.quantize`) turns it into a :class:`QGraph`, whose integer nodes the layer
reference (:mod:`sqzhw.golden.layers`) evaluates and the code generator (:mod:`sqzhw.compiler.codegen`)
compiles. Tensors are named by their ONNX names; shapes are ``(C, H, W)`` (batch 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Conv", "MaxPool", "Concat", "Add", "GlobalAvgPool", "Node", "Graph", "QParams",
           "QConv", "QMaxPool", "QConcat", "QAdd", "QGlobalAvgPool", "QNode", "QGraph"]


# -- float graph ------------------------------------------------------------------------------

@dataclass
class Conv:
    """2-D convolution, groups = 1, optionally followed by a fused ReLU. ``pads`` are
    ``(top, left, bottom, right)``; ``weight`` is ``(Cout, Cin, kh, kw)`` float32."""
    name: str
    input: str
    output: str
    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    relu: bool = False
    op: str = "Conv"


@dataclass
class MaxPool:
    """Max-pool; ``pads`` ``(top, left, bottom, right)`` include the extra bottom/right rows that
    ``ceil_mode`` adds (padded positions never win)."""
    name: str
    input: str
    output: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    op: str = "MaxPool"


@dataclass
class Concat:
    """Channel concatenation."""
    name: str
    inputs: list[str]
    output: str
    op: str = "Concat"


@dataclass
class Add:
    """Element-wise sum of two tensors of the same shape (the bypass), optionally with a fused ReLU."""
    name: str
    inputs: list[str]
    output: str
    relu: bool = False
    op: str = "Add"


@dataclass
class GlobalAvgPool:
    """Mean over all pixels per channel; output shape ``(C, 1, 1)``."""
    name: str
    input: str
    output: str
    op: str = "GlobalAveragePool"


Node = Conv | MaxPool | Concat | Add | GlobalAvgPool


@dataclass
class Graph:
    """A float network in topological order.

    ``qparams`` holds ``(scale, zero_point)`` for tensors whose quantization the model fixes (a QDQ
    model); the quantizer uses them instead of calibrating. ``softmax`` records a final Softmax,
    applied by the host.
    """
    name: str
    input: str
    input_shape: tuple[int, int, int]
    output: str
    nodes: list[Node]
    shapes: dict[str, tuple[int, int, int]]
    qparams: dict[str, tuple[float, int]] = field(default_factory=dict)
    weight_scales: dict[str, np.ndarray] = field(default_factory=dict)
    softmax: bool = False

    def producer(self, tensor: str) -> Node | None:
        for node in self.nodes:
            if node.output == tensor:
                return node
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes
                if tensor in (n.inputs if isinstance(n, (Concat, Add)) else [n.input])]


# -- quantized graph --------------------------------------------------------------------------

@dataclass(frozen=True)
class QParams:
    """Per-tensor activation quantization: ``real = scale * (q - zero_point)``, ``q`` int8."""
    scale: float
    zero_point: int


@dataclass
class QConv:
    """Integer convolution: ``acc = sum((q_in - zp_in) * weight) + bias`` (int32) then
    ``requantize(acc, multiplier, shift, out.zero_point, relu)`` per output channel."""
    name: str
    input: str
    output: str
    weight: np.ndarray          # int8 (Cout, Cin, kh, kw), symmetric per output channel
    weight_scale: np.ndarray    # float (Cout,)
    bias: np.ndarray            # int32 (Cout,), in units of in.scale * weight_scale
    multiplier: np.ndarray      # int64 (Cout,), 0 <= M < 2**31
    shift: np.ndarray           # int64 (Cout,), 0 <= n <= 62
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    relu: bool
    in_q: QParams
    out_q: QParams
    op: str = "Conv"


@dataclass
class QMaxPool:
    """Max-pool on int8 (scale and zero point pass through)."""
    name: str
    input: str
    output: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    q: QParams
    op: str = "MaxPool"


@dataclass
class QConcat:
    """Concatenation; every input shares the output's quantization (so it is a channel offset)."""
    name: str
    inputs: list[str]
    output: str
    q: QParams
    op: str = "Concat"


@dataclass
class QAdd:
    """Bypass add: ``acc = ka*(q_a - zp_a) + kb*(q_b - zp_b)`` then
    ``requantize(acc, multiplier, shift, out.zero_point, relu)``."""
    name: str
    inputs: list[str]
    output: str
    ka: int
    kb: int
    multiplier: int
    shift: int
    relu: bool
    a_q: QParams
    b_q: QParams
    out_q: QParams
    op: str = "Add"


@dataclass
class QGlobalAvgPool:
    """Per-channel int32 sums of int8 inputs (the host divides and dequantizes)."""
    name: str
    input: str
    output: str
    in_q: QParams
    op: str = "GlobalAveragePool"


QNode = QConv | QMaxPool | QConcat | QAdd | QGlobalAvgPool


@dataclass
class QGraph:
    """A quantized network: the float graph's structure with integer parameters and per-tensor
    :class:`QParams`. The output is the int32 sums of the final global average pool."""
    name: str
    input: str
    input_shape: tuple[int, int, int]
    input_q: QParams
    output: str
    nodes: list[QNode]
    shapes: dict[str, tuple[int, int, int]]
    tensor_q: dict[str, QParams]
    softmax: bool = False
