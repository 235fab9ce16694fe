"""ONNX front end: an ONNX model to the float IR (:class:`sqzhw.compiler.graph.Graph`).

One handler per ONNX op type, registered with :func:`handler` (as hls4ml's ``@onnx_handler``). The
importer walks the (topologically sorted) ONNX nodes once; each handler either appends IR nodes or
makes its output an *alias* of its input (Dropout, Identity, Flatten/Reshape/Squeeze after the global
pool, Softmax at the end, a QuantizeLinear/DequantizeLinear pair on an activation).

What the importer resolves
--------------------------
* ReLU is fused into the Conv/Add producing its input when nothing else reads that output; the fused
  node takes the ReLU's output name.
* MaxPool ``ceil_mode`` becomes extra bottom/right padding; ``auto_pad`` becomes explicit pads.
* AveragePool whose kernel covers the whole (unpadded) input is a global average pool.
* Weights may be initializers, Constant nodes or DequantizeLinear of either (QDQ models). A
  DequantizeLinear on a weight gives the float weight and ``graph.weight_scales[conv name]``.
* A QuantizeLinear -> DequantizeLinear pair on an activation records ``graph.qparams[tensor] =
  (scale, zero point as int8)`` (uint8 zero points minus 128) and disappears. If the pair's real
  range starts at 0 (int8 zero point -128) and the tensor comes straight from a Conv/Add, that node
  gets ``relu=True``: the pair clamps at 0, and onnxruntime's QDQ quantizer removes such ReLUs.
* A final Softmax sets ``graph.softmax``; the IR output is the global pool's ``(C, 1, 1)``. Q/DQ
  pairs after the pool (on the Flatten or Softmax output) quantize the host's post-processing, not
  an engine tensor, and are dropped without recording.

Errors are :class:`FrontendError` naming the node, its op type, the attribute and the supported ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from .graph import Add, Concat, Conv, GlobalAvgPool, Graph, MaxPool, Node

__all__ = ["FrontendError", "import_onnx", "handler", "supported_ops"]


class FrontendError(ValueError):
    """An ONNX model the front end cannot import; the message names the node, op and attribute."""


_HANDLERS: dict[str, Callable[["_Importer", onnx.NodeProto], None]] = {}


def handler(*op_types: str):
    """Register a function ``(importer, node) -> None`` as the handler of the given ONNX op types."""
    def register(fn):
        for op in op_types:
            _HANDLERS[op] = fn
        return fn
    return register


def supported_ops() -> list[str]:
    """The ONNX op types the front end accepts."""
    return sorted(_HANDLERS)


# Ops that only forward a tensor (for "who really reads this tensor" when deciding ReLU fusion).
_PASS_THROUGH = {"Identity", "Dropout", "QuantizeLinear", "DequantizeLinear"}


def _node_label(node: onnx.NodeProto) -> str:
    name = node.name or (node.output[0] if node.output else "?")
    return f"node {name!r} ({node.op_type})"


@dataclass
class _Importer:
    model: onnx.ModelProto
    input_size: tuple[int, int] | None
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    # Scale of a constant that came out of a DequantizeLinear (the weight's quantization).
    const_scales: dict[str, np.ndarray] = field(default_factory=dict)
    alias: dict[str, str] = field(default_factory=dict)
    # ONNX shape of every activation tensor (batch 1), by ONNX name.
    onnx_shape: dict[str, tuple[int, ...]] = field(default_factory=dict)
    shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    # QuantizeLinear outputs awaiting their DequantizeLinear: q tensor -> (source, scale, zp int8).
    pending_q: dict[str, tuple[str, float, int]] = field(default_factory=dict)
    qparams: dict[str, tuple[float, int]] = field(default_factory=dict)
    weight_scales: dict[str, np.ndarray] = field(default_factory=dict)
    softmax: bool = False
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)
    graph_outputs: set[str] = field(default_factory=set)
    # ONNX tensors computed on the host after the global pool (Flatten/Reshape/Squeeze/Softmax and
    # what follows): a Q/DQ pair on them does not quantize an engine tensor.
    host_side: set[str] = field(default_factory=set)
    # The ONNX tensor each IR node originally wrote (before a fused ReLU renamed it).
    onnx_out: dict[str, str] = field(default_factory=dict)
    opset: int = 13

    # -- helpers used by handlers ------------------------------------------------------------

    def error(self, node: onnx.NodeProto, what: str, attribute: str | None = None) -> FrontendError:
        attr = f", attribute {attribute!r}" if attribute else ""
        return FrontendError(f"{_node_label(node)}{attr}: {what}. "
                             f"Supported ops: {', '.join(supported_ops())}")

    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def attrs(self, node: onnx.NodeProto) -> dict:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def const(self, node: onnx.NodeProto, index: int, what: str, required: bool = True) -> np.ndarray | None:
        if index >= len(node.input) or node.input[index] == "":
            if required:
                raise self.error(node, f"missing input {index} ({what})")
            return None
        name = node.input[index]
        if name not in self.consts:
            raise self.error(node, f"input {index} ({what}) {name!r} must be a constant (initializer, "
                                   f"Constant node or DequantizeLinear of one)")
        return self.consts[name]

    def activation(self, node: onnx.NodeProto, index: int = 0) -> str:
        """The IR tensor feeding input ``index`` of ``node`` (a computed tensor, not a constant)."""
        if index >= len(node.input) or node.input[index] == "":
            raise self.error(node, f"missing input {index}")
        raw = node.input[index]
        if raw in self.pending_q:
            raise self.error(node, f"reads the QuantizeLinear output {raw!r} directly; only "
                                   f"DequantizeLinear may consume it")
        name = self.resolve(raw)
        if name not in self.shapes:
            if raw in self.consts:
                raise self.error(node, f"input {index} {raw!r} is a constant; only activations are "
                                       f"supported here")
            raise self.error(node, f"input {index} {raw!r} is not produced by any earlier node")
        return name

    def unique_name(self, node: onnx.NodeProto) -> str:
        base = node.name or node.output[0]
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def add_node(self, node: Node, onnx_out: str, shape: tuple[int, int, int]) -> None:
        self.nodes.append(node)
        self.onnx_out[node.name] = onnx_out
        self.shapes[node.output] = shape
        self.onnx_shape[onnx_out] = (1, *shape)
        if onnx_out != node.output:
            self.alias[onnx_out] = node.output

    def make_alias(self, node: onnx.NodeProto, out: str, src_raw: str, onnx_shape: tuple[int, ...],
                   host: bool = False) -> None:
        self.alias[out] = self.resolve(src_raw)
        self.onnx_shape[out] = onnx_shape
        if host or src_raw in self.host_side:
            self.host_side.add(out)

    def real_consumers(self, tensor: str) -> list[onnx.NodeProto | str]:
        """ONNX nodes reading ``tensor``, looking through pass-through ops; graph outputs count."""
        out: list[onnx.NodeProto | str] = []
        if tensor in self.graph_outputs:
            out.append("<graph output>")
        for n in self.consumers.get(tensor, []):
            if n.op_type in _PASS_THROUGH and n.input[0] == tensor:
                out.extend(self.real_consumers(n.output[0]))
            else:
                out.append(n)
        return out

    def spatial_out(self, node: onnx.NodeProto, size: tuple[int, int], kernel: tuple[int, int],
                    stride: tuple[int, int], attrs: dict, ceil_mode: bool = False
                    ) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """Output size and explicit ``(top, left, bottom, right)`` pads (auto_pad and ceil_mode resolved)."""
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        dil = tuple(attrs.get("dilations", (1, 1)))
        if any(d != 1 for d in dil):
            raise self.error(node, f"dilations {list(dil)} are not supported (only 1)", "dilations")
        h, w = size
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            outs, pads_a, pads_b = [], [], []
            for n, k, s in ((h, kernel[0], stride[0]), (w, kernel[1], stride[1])):
                o = -(-n // s)
                total = max((o - 1) * s + k - n, 0)
                small, big = total // 2, total - total // 2
                a, b = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
                outs.append(o), pads_a.append(a), pads_b.append(b)
            pads = (pads_a[0], pads_a[1], pads_b[0], pads_b[1])
        elif auto_pad in ("NOTSET", "VALID", ""):
            p = tuple(attrs.get("pads", (0, 0, 0, 0))) if auto_pad != "VALID" else (0, 0, 0, 0)
            if len(p) != 4:
                raise self.error(node, f"pads {list(p)} must have 4 entries (2-D)", "pads")
            # ONNX pads are (top, left, bottom, right) for 2-D: x1_begin, x2_begin, x1_end, x2_end.
            pads = (int(p[0]), int(p[1]), int(p[2]), int(p[3]))
            if any(v < 0 for v in pads):
                raise self.error(node, f"negative pads {list(p)}", "pads")
            outs = []
            extra = []
            for n, k, s, a, b in ((h, kernel[0], stride[0], pads[0], pads[2]),
                                  (w, kernel[1], stride[1], pads[1], pads[3])):
                span = n + a + b - k
                if span < 0:
                    raise self.error(node, f"kernel {kernel[0]}x{kernel[1]} does not fit the {h}x{w} input "
                                           f"(pads {list(pads)}): the feature map would shrink below 1 pixel")
                if ceil_mode:
                    o = -(-span // s) + 1
                    # The last window must start inside the input or its leading padding.
                    if (o - 1) * s >= n + a:
                        o -= 1
                else:
                    o = span // s + 1
                outs.append(o)
                extra.append(max(0, (o - 1) * s + k - (n + a + b)))
            pads = (pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1])
        else:
            raise self.error(node, f"auto_pad {auto_pad!r} is not supported", "auto_pad")
        if outs[0] < 1 or outs[1] < 1:
            raise self.error(node, f"output would be {outs[0]}x{outs[1]} from a {h}x{w} input: "
                                   f"the feature map shrinks below 1 pixel")
        return (outs[0], outs[1]), pads

    # -- driver -----------------------------------------------------------------------------

    def run(self) -> Graph:
        g = self.model.graph
        self.opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 13)
        for init in g.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        for n in g.node:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        if len(g.output) != 1:
            raise FrontendError(f"model {g.name!r} has {len(g.output)} outputs "
                                f"({[o.name for o in g.output]}); exactly one is supported")
        self.graph_outputs = {g.output[0].name}
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise FrontendError(f"model {g.name!r} has {len(inputs)} non-constant inputs "
                                f"({[i.name for i in inputs]}); exactly one image input is supported")
        inp = inputs[0]
        in_shape = self._input_shape(inp)
        self.shapes[inp.name] = in_shape
        self.onnx_shape[inp.name] = (1, *in_shape)
        self.names.add(inp.name)

        for node in g.node:
            fn = _HANDLERS.get(node.op_type)
            if fn is None or node.domain not in ("", "ai.onnx"):
                raise self.error(node, f"op type {node.op_type!r}"
                                       f"{' of domain ' + repr(node.domain) if node.domain else ''}"
                                       f" is not supported")
            fn(self, node)

        if self.pending_q:
            q = next(iter(self.pending_q))
            raise FrontendError(f"QuantizeLinear output {q!r} is never dequantized")
        out_raw = g.output[0].name
        out = self.resolve(out_raw)
        prod = next((n for n in self.nodes if n.output == out), None)
        if not isinstance(prod, GlobalAvgPool):
            what = f"{prod.name!r} ({prod.op})" if prod is not None else "no node"
            raise FrontendError(f"model output {out_raw!r} comes from {what}; sqzhw needs the network to end "
                                f"in a global average pool (optionally followed by Flatten/Reshape/Softmax)")
        return Graph(name=g.name or "model", input=inp.name, input_shape=in_shape, output=out,
                     nodes=self.nodes, shapes=self.shapes, qparams=self.qparams,
                     weight_scales=self.weight_scales, softmax=self.softmax)

    def _input_shape(self, inp: onnx.ValueInfoProto) -> tuple[int, int, int]:
        t = inp.type.tensor_type
        if t.elem_type != onnx.TensorProto.FLOAT:
            raise FrontendError(f"input {inp.name!r} has element type "
                                f"{onnx.TensorProto.DataType.Name(t.elem_type)}; only float32 is supported")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if len(dims) != 4:
            raise FrontendError(f"input {inp.name!r} has rank {len(dims)} (shape {dims}); "
                                f"an NCHW image (rank 4) is needed")
        n, c, h, w = dims
        if n not in (None, 0, 1):
            raise FrontendError(f"input {inp.name!r} has batch size {n}; only 1 (or dynamic) is supported")
        if c is None:
            raise FrontendError(f"input {inp.name!r} has a dynamic channel count")
        if self.input_size is not None:
            h, w = (int(v) for v in self.input_size)
            if h < 1 or w < 1:
                raise FrontendError(f"input_size {self.input_size} must be positive")
        if not h or not w:
            raise FrontendError(f"input {inp.name!r} has a dynamic spatial size {dims[2:]}; "
                                f"pass input_size=(height, width)")
        return (int(c), int(h), int(w))


# -- handlers: tensors that are not computed by the engine ------------------------------------

@handler("Constant")
def _constant(imp: _Importer, node: onnx.NodeProto) -> None:
    a = imp.attrs(node)
    if "value" in a:
        imp.consts[node.output[0]] = numpy_helper.to_array(a["value"])
    elif "value_float" in a or "value_int" in a:
        imp.consts[node.output[0]] = np.array(a.get("value_float", a.get("value_int")))
    elif "value_floats" in a or "value_ints" in a:
        imp.consts[node.output[0]] = np.array(a.get("value_floats", a.get("value_ints")))
    else:
        raise imp.error(node, f"unsupported Constant attribute(s) {sorted(a)}", next(iter(a), None))


def _qparams(imp: _Importer, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray, int]:
    scale = imp.const(node, 1, "scale")
    zp = imp.const(node, 2, "zero point", required=False)
    if zp is None:
        zp = np.zeros_like(scale, dtype=np.uint8)
    axis = imp.attrs(node).get("axis", 1)
    return scale.astype(np.float64), zp, axis


def _broadcast(param: np.ndarray, rank: int, axis: int) -> np.ndarray:
    if param.ndim == 0 or rank == 0:
        return param
    shape = [1] * rank
    shape[axis % rank] = param.size
    return param.reshape(shape)


def _int8_zero_point(imp: _Importer, node: onnx.NodeProto, zp: np.ndarray) -> int:
    if zp.size != 1:
        raise imp.error(node, f"per-channel quantization of an activation ({zp.size} zero points) is "
                              f"not supported")
    if zp.dtype == np.uint8:
        return int(zp.reshape(())) - 128
    if zp.dtype == np.int8:
        return int(zp.reshape(()))
    raise imp.error(node, f"activation zero point of type {zp.dtype} is not supported (uint8 or int8)")


@handler("QuantizeLinear")
def _quantize_linear(imp: _Importer, node: onnx.NodeProto) -> None:
    scale, zp, axis = _qparams(imp, node)
    src = node.input[0]
    if src in imp.consts:
        # A float weight quantized in the graph: fold it.
        x = imp.consts[src].astype(np.float64)
        info = np.iinfo(zp.dtype)
        q = np.round(x / _broadcast(scale, x.ndim, axis)) + _broadcast(zp.astype(np.int64), x.ndim, axis)
        imp.consts[node.output[0]] = np.clip(q, info.min, info.max).astype(zp.dtype)
        return
    tensor = imp.activation(node, 0)
    if scale.size != 1:
        raise imp.error(node, f"per-channel quantization of activation {src!r} is not supported")
    imp.pending_q[node.output[0]] = (tensor, float(scale.reshape(())), _int8_zero_point(imp, node, zp))
    imp.onnx_shape[node.output[0]] = imp.onnx_shape.get(src, (1, *imp.shapes[tensor]))
    if src in imp.host_side:
        imp.host_side.add(node.output[0])


@handler("DequantizeLinear")
def _dequantize_linear(imp: _Importer, node: onnx.NodeProto) -> None:
    scale, zp, axis = _qparams(imp, node)
    src = node.input[0]
    if src in imp.consts:
        q = imp.consts[src]
        x = (q.astype(np.float64) - _broadcast(zp.astype(np.float64), q.ndim, axis)) \
            * _broadcast(scale, q.ndim, axis)
        imp.consts[node.output[0]] = x.astype(np.float32)
        imp.const_scales[node.output[0]] = scale.astype(np.float32)
        return
    if src not in imp.pending_q:
        raise imp.error(node, f"input {src!r} is neither a constant nor a QuantizeLinear output")
    tensor, qscale, qzp = imp.pending_q[src]
    if scale.size != 1 or abs(float(scale.reshape(())) - qscale) > 1e-12 * max(1.0, qscale) \
            or _int8_zero_point(imp, node, zp) != qzp:
        raise imp.error(node, f"dequantizes {src!r} with other parameters than its QuantizeLinear")
    # Several DequantizeLinear may share one QuantizeLinear; it is consumed when all are seen.
    if all(c.op_type == "DequantizeLinear" for c in imp.consumers.get(src, [])):
        last = [c for c in imp.consumers[src]][-1]
        if last is node:
            del imp.pending_q[src]
    else:
        raise imp.error(node, f"QuantizeLinear output {src!r} is read by ops other than DequantizeLinear")
    if src in imp.host_side:
        # Quantization of the host's post-processing (e.g. the softmax output): not an engine tensor.
        imp.make_alias(node, node.output[0], tensor, imp.onnx_shape[src], host=True)
        return
    prev = imp.qparams.get(tensor)
    if prev is not None and prev != (qscale, qzp):
        raise imp.error(node, f"tensor {tensor!r} is quantized twice with different parameters "
                              f"{prev} and {(qscale, qzp)}")
    imp.qparams[tensor] = (qscale, qzp)
    imp.make_alias(node, node.output[0], tensor, imp.onnx_shape[src])
    # A range starting at exactly 0 clamps like a ReLU (and onnxruntime's QDQ quantizer removes the
    # ReLU in that case); keep the float graph equivalent.
    if qzp == -128:
        prod = next((n for n in imp.nodes if n.output == tensor), None)
        if isinstance(prod, (Conv, Add)):
            prod.relu = True


@handler("Identity")
def _identity(imp: _Importer, node: onnx.NodeProto) -> None:
    if node.input[0] in imp.consts:
        imp.consts[node.output[0]] = imp.consts[node.input[0]]
        return
    src = imp.activation(node, 0)
    imp.make_alias(node, node.output[0], node.input[0], imp.onnx_shape[node.input[0]])
    del src


@handler("Dropout")
def _dropout(imp: _Importer, node: onnx.NodeProto) -> None:
    imp.activation(node, 0)
    if len(node.output) > 1 and node.output[1] and imp.consumers.get(node.output[1]):
        raise imp.error(node, "the dropout mask output is used; only inference (identity) is supported")
    training = imp.const(node, 2, "training_mode", required=False)
    if training is not None and bool(np.asarray(training).reshape(())):
        raise imp.error(node, "training_mode is true; only inference (identity) dropout is supported",
                        "training_mode")
    if imp.attrs(node).get("is_test", 1) == 0:
        raise imp.error(node, "is_test=0 (training) dropout is not supported", "is_test")
    imp.make_alias(node, node.output[0], node.input[0], imp.onnx_shape[node.input[0]])


def _check_pooled(imp: _Importer, node: onnx.NodeProto) -> tuple[str, tuple[int, int, int]]:
    src = imp.activation(node, 0)
    shape = imp.shapes[src]
    if shape[1:] != (1, 1):
        raise imp.error(node, f"reshaping the {shape} tensor {node.input[0]!r}: Flatten/Reshape/Squeeze are "
                              f"only supported on a (C, 1, 1) tensor after the global pool")
    return src, shape


@handler("Flatten")
def _flatten(imp: _Importer, node: onnx.NodeProto) -> None:
    _, shape = _check_pooled(imp, node)
    in_shape = imp.onnx_shape[node.input[0]]
    axis = imp.attrs(node).get("axis", 1) % max(len(in_shape), 1) if in_shape else 0
    outer = int(np.prod(in_shape[:axis])) if axis else 1
    imp.make_alias(node, node.output[0], node.input[0], (outer, int(np.prod(in_shape)) // outer), host=True)


@handler("Reshape")
def _reshape(imp: _Importer, node: onnx.NodeProto) -> None:
    _, shape = _check_pooled(imp, node)
    target = [int(v) for v in np.asarray(imp.const(node, 1, "shape")).ravel()]
    in_shape = imp.onnx_shape[node.input[0]]
    allowzero = imp.attrs(node).get("allowzero", 0)
    out = [in_shape[i] if (v == 0 and not allowzero and i < len(in_shape)) else v
           for i, v in enumerate(target)]
    numel = int(np.prod(in_shape))
    if out.count(-1) > 1:
        raise imp.error(node, f"shape {target} has more than one -1", "shape")
    if -1 in out:
        known = int(np.prod([v for v in out if v != -1]))
        if known == 0 or numel % known:
            raise imp.error(node, f"cannot reshape {in_shape} to {target}", "shape")
        out[out.index(-1)] = numel // known
    if int(np.prod(out)) != numel:
        raise imp.error(node, f"cannot reshape {in_shape} ({numel} elements) to {target}", "shape")
    imp.make_alias(node, node.output[0], node.input[0], tuple(out), host=True)


@handler("Squeeze")
def _squeeze(imp: _Importer, node: onnx.NodeProto) -> None:
    _check_pooled(imp, node)
    in_shape = imp.onnx_shape[node.input[0]]
    axes = imp.attrs(node).get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = [int(v) for v in np.asarray(imp.const(node, 1, "axes")).ravel()]
    if axes is None:
        out = tuple(d for d in in_shape if d != 1)
    else:
        axes = {a % len(in_shape) for a in axes}
        if any(in_shape[a] != 1 for a in axes):
            raise imp.error(node, f"squeezes axes {sorted(axes)} of shape {in_shape} that are not 1", "axes")
        out = tuple(d for i, d in enumerate(in_shape) if i not in axes)
    imp.make_alias(node, node.output[0], node.input[0], out, host=True)


@handler("Softmax")
def _softmax(imp: _Importer, node: onnx.NodeProto) -> None:
    src = imp.activation(node, 0)
    if imp.real_consumers(node.output[0]) != ["<graph output>"]:
        raise imp.error(node, "Softmax is only supported as the last op (its output the model output)")
    in_shape = imp.onnx_shape[node.input[0]]
    if imp.shapes[src][1:] != (1, 1):
        raise imp.error(node, f"Softmax on a {imp.shapes[src]} tensor; only after the global pool")
    rank = len(in_shape)
    axis = imp.attrs(node).get("axis", -1 if imp.opset >= 13 else 1) % max(rank, 1)
    # The class axis is the one dimension larger than 1 (or the channel dim if there is only one class).
    cls = next((i for i, d in enumerate(in_shape) if d > 1), min(1, rank - 1))
    reduced = {axis} if imp.opset >= 13 else set(range(axis, rank))
    if cls not in reduced:
        raise imp.error(node, f"axis {axis} of the {in_shape} input does not cover the class axis", "axis")
    imp.softmax = True
    imp.make_alias(node, node.output[0], node.input[0], in_shape, host=True)


# -- handlers: engine ops ---------------------------------------------------------------------

@handler("Conv")
def _conv(imp: _Importer, node: onnx.NodeProto) -> None:
    src = imp.activation(node, 0)
    a = imp.attrs(node)
    weight = imp.const(node, 1, "weight")
    if weight.ndim != 4:
        raise imp.error(node, f"weight of shape {weight.shape}: only 2-D convolutions are supported")
    if a.get("group", 1) != 1:
        raise imp.error(node, f"group={a['group']} is not supported (only 1)", "group")
    c, h, w = imp.shapes[src]
    cout, cin, kh, kw = weight.shape
    if cin != c:
        raise imp.error(node, f"weight {weight.shape} expects {cin} input channels, input {src!r} has {c}")
    ks = tuple(a.get("kernel_shape", (kh, kw)))
    if ks != (kh, kw):
        raise imp.error(node, f"kernel_shape {list(ks)} disagrees with the weight {weight.shape}",
                        "kernel_shape")
    stride = tuple(int(s) for s in a.get("strides", (1, 1)))
    bias = imp.const(node, 2, "bias", required=False)
    bias = np.zeros(cout, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(-1)
    if bias.shape != (cout,):
        raise imp.error(node, f"bias has {bias.size} values for {cout} output channels")
    (ho, wo), pads = imp.spatial_out(node, (h, w), (kh, kw), stride, a)
    name = imp.unique_name(node)
    ir = Conv(name=name, input=src, output=node.output[0], weight=np.asarray(weight, np.float32),
              bias=bias, stride=stride, pads=pads)
    if node.input[1] in imp.const_scales:
        s = imp.const_scales[node.input[1]].reshape(-1)
        if s.size not in (1, cout):
            raise imp.error(node, f"weight has {s.size} scales for {cout} output channels")
        imp.weight_scales[name] = np.broadcast_to(s, (cout,)).astype(np.float32).copy()
    imp.add_node(ir, node.output[0], (cout, ho, wo))


@handler("Relu")
def _relu(imp: _Importer, node: onnx.NodeProto) -> None:
    src = imp.activation(node, 0)
    prod = next((n for n in imp.nodes if n.output == src), None)
    if not isinstance(prod, (Conv, Add)):
        what = f"{prod.name!r} ({prod.op})" if prod is not None else "the network input"
        raise imp.error(node, f"ReLU after {what} cannot be fused: sqzhw fuses ReLU into the Conv or Add "
                              f"before it")
    # Which ONNX tensor did the producer originally write? Look through pass-through ops.
    readers = [r for r in imp.real_consumers(imp.onnx_out[prod.name]) if r is not node]
    if readers:
        names = [r if isinstance(r, str) else _node_label(r) for r in readers]
        raise imp.error(node, f"cannot fuse into {prod.name!r}: its output {src!r} is also read by {names}")
    prod.relu = True  # may already be set by a QDQ clamp at 0: the same ReLU
    new = node.output[0]
    shape = imp.shapes.pop(prod.output)
    if prod.output in imp.qparams and new not in imp.qparams:
        imp.qparams[new] = imp.qparams.pop(prod.output)
    old = prod.output
    prod.output = new
    imp.shapes[new] = shape
    imp.onnx_shape[new] = imp.onnx_shape[node.input[0]]
    # Earlier ONNX names that pointed at the old tensor now point at the fused output.
    for k, v in list(imp.alias.items()):
        if v == old:
            imp.alias[k] = new
    imp.alias[old] = new
    imp.alias.pop(new, None)


@handler("MaxPool")
def _maxpool(imp: _Importer, node: onnx.NodeProto) -> None:
    src = imp.activation(node, 0)
    if len(node.output) > 1 and node.output[1]:
        raise imp.error(node, "the Indices output is not supported")
    a = imp.attrs(node)
    if "kernel_shape" not in a or len(a["kernel_shape"]) != 2:
        raise imp.error(node, "needs a 2-D kernel_shape", "kernel_shape")
    if a.get("storage_order", 0) != 0:
        raise imp.error(node, "storage_order=1 is not supported", "storage_order")
    kernel = tuple(int(k) for k in a["kernel_shape"])
    stride = tuple(int(s) for s in a.get("strides", (1, 1)))
    c, h, w = imp.shapes[src]
    (ho, wo), pads = imp.spatial_out(node, (h, w), kernel, stride, a, ceil_mode=bool(a.get("ceil_mode", 0)))
    ir = MaxPool(name=imp.unique_name(node), input=src, output=node.output[0], kernel=kernel,
                 stride=stride, pads=pads)
    imp.add_node(ir, node.output[0], (c, ho, wo))


@handler("GlobalAveragePool")
def _global_avg_pool(imp: _Importer, node: onnx.NodeProto) -> None:
    src = imp.activation(node, 0)
    c = imp.shapes[src][0]
    imp.add_node(GlobalAvgPool(name=imp.unique_name(node), input=src, output=node.output[0]),
                 node.output[0], (c, 1, 1))


@handler("AveragePool")
def _average_pool(imp: _Importer, node: onnx.NodeProto) -> None:
    src = imp.activation(node, 0)
    a = imp.attrs(node)
    c, h, w = imp.shapes[src]
    kernel = tuple(int(k) for k in a.get("kernel_shape", ()))
    pads = tuple(a.get("pads", (0, 0, 0, 0)))
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if kernel != (h, w):
        raise imp.error(node, f"kernel_shape {list(kernel)} on a {h}x{w} input: only an AveragePool covering "
                              f"the whole input (a global average pool) is supported", "kernel_shape")
    if any(pads) or auto_pad not in ("NOTSET", "VALID", ""):
        raise imp.error(node, f"padding ({list(pads)}, auto_pad {auto_pad}) is not supported", "pads")
    imp.add_node(GlobalAvgPool(name=imp.unique_name(node), input=src, output=node.output[0]),
                 node.output[0], (c, 1, 1))


@handler("Concat")
def _concat(imp: _Importer, node: onnx.NodeProto) -> None:
    srcs = [imp.activation(node, i) for i in range(len(node.input))]
    rank = len(imp.onnx_shape[node.input[0]])
    axis = imp.attrs(node).get("axis", 1)
    if rank != 4 or axis % 4 != 1:
        raise imp.error(node, f"axis {axis} of a rank-{rank} tensor: only channel concatenation is supported",
                        "axis")
    shapes = [imp.shapes[s] for s in srcs]
    if any(s[1:] != shapes[0][1:] for s in shapes):
        raise imp.error(node, f"inputs have different spatial sizes {shapes}")
    ir = Concat(name=imp.unique_name(node), inputs=srcs, output=node.output[0])
    imp.add_node(ir, node.output[0], (sum(s[0] for s in shapes), *shapes[0][1:]))


@handler("Add")
def _add(imp: _Importer, node: onnx.NodeProto) -> None:
    if len(node.input) != 2:
        raise imp.error(node, f"{len(node.input)} inputs; only two are supported")
    a_, b_ = imp.activation(node, 0), imp.activation(node, 1)
    if imp.shapes[a_] != imp.shapes[b_]:
        raise imp.error(node, f"input shapes {imp.shapes[a_]} and {imp.shapes[b_]} differ "
                              f"(broadcasting is not supported)")
    ir = Add(name=imp.unique_name(node), inputs=[a_, b_], output=node.output[0])
    imp.add_node(ir, node.output[0], imp.shapes[a_])


# -- entry point ------------------------------------------------------------------------------

def import_onnx(model: str | Path | onnx.ModelProto, input_size: tuple[int, int] | None = None) -> Graph:
    """Import an ONNX CNN into the float IR.

    Parameters
    ----------
    model : str, Path or onnx.ModelProto
        The model (a file path or a loaded ModelProto). Batch size 1 or dynamic.
    input_size : (height, width), optional
        Overrides the input's spatial size (needed when the model's is dynamic). Sizes that shrink a
        feature map below one pixel are refused.

    Returns
    -------
    Graph
        Nodes in topological order, shapes of every tensor, QDQ parameters if the model had them.

    Raises
    ------
    FrontendError
        Unsupported op, attribute or input, naming the node and op type.
    """
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.exists():
            raise FrontendError(f"ONNX model {str(path)!r} does not exist")
        try:
            model = onnx.load(str(path))
        except Exception as e:  # protobuf errors are opaque; say which file
            raise FrontendError(f"{str(path)!r} is not a readable ONNX model: {e}") from e
    elif not isinstance(model, onnx.ModelProto):
        raise FrontendError(f"import_onnx takes a path or an onnx.ModelProto, got {type(model).__name__}")
    if input_size is not None and (len(tuple(input_size)) != 2):
        raise FrontendError(f"input_size must be (height, width), got {input_size!r}")
    return _Importer(model, tuple(input_size) if input_size is not None else None).run()
