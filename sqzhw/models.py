"""Generated SqueezeNet ONNX models with seeded random weights (no torch, no downloads).

:func:`build_squeezenet` writes SqueezeNet 1.0 or 1.1 (Iandola et al., 2016) with ``onnx.helper`` in
three graph styles that real exports use, so the front end is tested on each:

``deepscale``
    Like ``../shared/models``: Conv, Relu, MaxPool 3x3/2 ``ceil_mode=1``, Concat, GlobalAveragePool,
    Flatten, Softmax; input ``data``, output ``prob``; Caffe-style names (``fire2/squeeze1x1``).
``torchvision``
    As ``torch.onnx.export`` writes torchvision's ``squeezenet1_0/1_1``: node names like
    ``/features/features.3/squeeze/Conv``, weights ``features.3.squeeze.weight``, Dropout before the
    classifier conv (``ratio``/``training_mode`` inputs from opset 12, an attribute before), the
    adaptive pool as GlobalAveragePool or as an AveragePool over the whole map (``avgpool=``),
    Flatten or Reshape with a constant shape (``flatten=``), no Softmax, input ``input.1``.
``zoo``
    Like the ONNX model zoo's ``squeezenet1.1-7`` (an MXNet export, opset 7): ``squeezenet0_conv0_fwd``
    names, initializers also listed as graph inputs, MaxPool with explicit asymmetric pads instead of
    ``ceil_mode`` (absent in opset 7), Dropout, AveragePool over the whole map, Reshape, no Softmax.

Bypass (the paper's section 6, figure 2): ``"simple"`` adds the Fire module's input to its output
around fire3, fire5, fire7 and fire9, where input and output channels match; ``"complex"`` also
bypasses fire2, fire4, fire6 and fire8 through a 1x1 convolution (no ReLU: a linear projection, as in
ResNet's projection shortcuts) that matches the channel counts. The Add has no ReLU after it (both
inputs of a simple bypass are already non-negative), as in the paper's Caffe model.

Weights are He-normal (``std = sqrt(2 / fan_in)``) so activations neither vanish nor explode through
the ReLU network; biases are small and non-zero so bias paths are exercised. For deepscale style the
input is raw pixels (0..255), so conv1's weights are scaled by 1/128 to keep activations O(1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["build_squeezenet", "save_model", "fire_config", "VERSIONS", "STYLES", "BYPASSES"]

VERSIONS = ("1.0", "1.1")
STYLES = ("deepscale", "torchvision", "zoo")
BYPASSES = (None, "simple", "complex")

# Fire modules (squeeze, expand1x1, expand3x3) in v1.0/1.1 numbering, fire2..fire9.
_FIRES = [(16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128),
          (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)]
# Max-pools sit after these layers ("conv1" or a fire number).
_POOLS = {"1.0": ("conv1", 4, 8), "1.1": ("conv1", 3, 5)}
_CONV1 = {"1.0": (96, 7), "1.1": (64, 3)}
_BYPASS_GAIN = 0.5


def _scaled(c: int, width_mult: float) -> int:
    """Channel count scaled by ``width_mult``, a multiple of 4, at least 4."""
    return max(4, int(round(c * width_mult / 4)) * 4)


def fire_config(version: str = "1.1", width_mult: float = 1.0) -> list[tuple[int, int, int, int]]:
    """``(input channels, squeeze, expand1x1, expand3x3)`` of fire2..fire9."""
    cin = _scaled(_CONV1[version][0], width_mult)
    out = []
    for s, e1, e3 in _FIRES:
        s, e1, e3 = (_scaled(v, width_mult) for v in (s, e1, e3))
        out.append((cin, s, e1, e3))
        cin = e1 + e3
    return out


@dataclass
class _Builder:
    style: str
    opset: int
    rng: np.random.Generator
    nodes: list
    inits: list
    counters: dict

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def zoo_name(self, kind: str) -> str:
        i = self.counters.get(kind, 0)
        self.counters[kind] = i + 1
        return f"squeezenet0_{kind}{i}"

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int, pad: int, path: str,
             relu: bool, gain: float = 1.0, bias_std: float = 0.05) -> str:
        """``path`` is the layer's module path: ``conv1``, ``fire2/squeeze1x1`` (deepscale) or
        ``features.3.squeeze`` (torchvision)."""
        std = gain * np.sqrt(2.0 / (cin * k * k))
        w = (self.rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32)
        b = (self.rng.standard_normal(cout) * bias_std).astype(np.float32)
        attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
        if self.style == "deepscale":
            wn, bn = self.init(f"{path}/W", w), self.init(f"{path}/b", b)
            name, out = "", path
        elif self.style == "torchvision":
            wn, bn = self.init(f"{path}.weight", w), self.init(f"{path}.bias", b)
            name = "/" + _torch_scope(path) + "/Conv"
            out = f"{name}_output_0"
            attrs = dict(dilations=[1, 1], group=1, **attrs)
        else:
            base = self.zoo_name("conv")
            wn, bn = self.init(f"{base}_weight", w), self.init(f"{base}_bias", b)
            name, out = f"{base}_fwd", f"{base}_fwd"
            attrs = dict(dilations=[1, 1], group=1, **attrs)
        self.nodes.append(helper.make_node("Conv", [x, wn, bn], [out], name=name, **attrs))
        return self.relu(out, path) if relu else out

    def relu(self, x: str, path: str) -> str:
        if self.style == "deepscale":
            parts = path.split("/")
            out = "/".join(parts[:-1] + ["relu_" + parts[-1]])
            name = ""
        elif self.style == "torchvision":
            name = "/" + _torch_scope(_torch_activation(path)) + "/Relu"
            out = f"{name}_output_0"
        else:
            name = out = self.zoo_name("relu") + "_fwd"
        self.nodes.append(helper.make_node("Relu", [x], [out], name=name))
        return out

    def maxpool(self, x: str, path: str, size: tuple[int, int]) -> tuple[str, tuple[int, int]]:
        """3x3 stride-2 max-pool with ceil_mode (zoo: the same as explicit bottom/right pads)."""
        out_size = tuple(-(-(n - 3) // 2) + 1 for n in size)
        if self.style == "zoo":
            extra = [max(0, (o - 1) * 2 + 3 - n) for o, n in zip(out_size, size)]
            name = out = self.zoo_name("pool") + "_fwd"
            self.nodes.append(helper.make_node("MaxPool", [x], [out], name=name, kernel_shape=[3, 3],
                                               strides=[2, 2], pads=[0, 0, extra[0], extra[1]]))
        else:
            if self.style == "deepscale":
                name, out = "", path
            else:
                name = "/" + _torch_scope(path) + "/MaxPool"
                out = f"{name}_output_0"
            self.nodes.append(helper.make_node("MaxPool", [x], [out], name=name, kernel_shape=[3, 3],
                                               strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=1))
        return out, out_size

    def concat(self, inputs: list[str], path: str) -> str:
        if self.style == "deepscale":
            name, out = "", f"{path}/concat"
        elif self.style == "torchvision":
            name = "/" + _torch_scope(path) + "/Concat"
            out = f"{name}_output_0"
        else:
            name = out = self.zoo_name("concat")
        self.nodes.append(helper.make_node("Concat", inputs, [out], name=name, axis=1))
        return out

    def add(self, a: str, b: str, path: str) -> str:
        if self.style == "deepscale":
            name, out = "", f"{path}/residual"
        elif self.style == "torchvision":
            name = "/" + _torch_scope(path) + "/Add"
            out = f"{name}_output_0"
        else:
            name = out = self.zoo_name("elemwise_add") + "_fwd"
        self.nodes.append(helper.make_node("Add", [a, b], [out], name=name))
        return out

    def dropout(self, x: str, path: str) -> str:
        if self.style == "torchvision":
            name = "/" + _torch_scope(path) + "/Dropout"
            out = f"{name}_output_0"
        else:
            name = out = self.zoo_name("dropout") + "_fwd"
        if self.opset >= 12:
            ratio = self.init(f"{path}.ratio" if self.style == "torchvision" else f"{name}_ratio",
                              np.array(0.5, np.float32))
            mode = self.init(f"{path}.training_mode" if self.style == "torchvision" else f"{name}_mode",
                             np.array(False))
            node = helper.make_node("Dropout", [x, ratio, mode], [out], name=name)
        else:
            node = helper.make_node("Dropout", [x], [out], name=name, ratio=0.5)
        self.nodes.append(node)
        return out


def _torch_scope(path: str) -> str:
    """``features.3.squeeze`` -> ``features/features.3/squeeze`` (torch's module-scope naming)."""
    parts = path.split(".")
    scope = [parts[0]]
    if len(parts) > 1:
        scope.append(f"{parts[0]}.{parts[1]}")
        scope.extend(parts[2:])
    return "/".join(scope)


def _torch_activation(path: str) -> str:
    """The ReLU module path after a conv: ``features.3.squeeze`` -> ``features.3.squeeze_activation``;
    top-level ``features.0`` -> ``features.1``."""
    parts = path.split(".")
    if len(parts) == 2:
        return f"{parts[0]}.{int(parts[1]) + 1}"
    return path + "_activation"


def build_squeezenet(version: str = "1.1", bypass: str | None = None, style: str = "deepscale",
                     input_size: tuple[int, int] = (224, 224), num_classes: int = 1000, opset: int = 13,
                     seed: int = 0, width_mult: float = 1.0, *, avgpool: str = "global",
                     flatten: str = "flatten", dropout: bool = True,
                     input_name: str | None = None) -> onnx.ModelProto:
    """Build a SqueezeNet as an ONNX model with seeded random He-init weights.

    Parameters
    ----------
    version : "1.0" or "1.1"
        1.0: conv1 7x7/2 with 96 channels, max-pools after conv1, fire4 and fire8.
        1.1: conv1 3x3/2 with 64 channels, max-pools after conv1, fire3 and fire5.
    bypass : None, "simple" or "complex"
        The paper's bypass connections (see the module docstring).
    style : "deepscale", "torchvision" or "zoo"
        Graph style (see the module docstring). ``zoo`` forces opset 7.
    input_size : (height, width)
        Any size the network admits (the feature map before conv10 must be at least 1x1).
    num_classes : int
        Output channels of conv10 (small values make fast tests).
    opset : int
        ONNX opset (deepscale and torchvision: 11..17 and beyond; zoo: 7).
    seed : int
        Seed of the weights.
    width_mult : float
        Scales every channel count (kept a multiple of 4, at least 4), e.g. 0.25 for fast tests.
    avgpool : "global" or "average"
        torchvision style: the adaptive pool as GlobalAveragePool, or as AveragePool with a kernel the
        size of the feature map (what some exports write).
    flatten : "flatten" or "reshape"
        torchvision style: the final ``torch.flatten`` as Flatten, or as Reshape with a constant shape.
    dropout : bool
        torchvision style: write the classifier's Dropout (eval-mode exports omit it).
    input_name : str, optional
        Default ``data`` (deepscale, zoo) or ``input.1`` (torchvision).

    Returns
    -------
    onnx.ModelProto
        Checked with ``onnx.checker``.
    """
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if bypass not in BYPASSES:
        raise ValueError(f"bypass must be one of {BYPASSES}, got {bypass!r}")
    if avgpool not in ("global", "average"):
        raise ValueError(f"avgpool must be 'global' or 'average', got {avgpool!r}")
    if flatten not in ("flatten", "reshape"):
        raise ValueError(f"flatten must be 'flatten' or 'reshape', got {flatten!r}")
    if width_mult <= 0 or num_classes < 1:
        raise ValueError(f"width_mult ({width_mult}) and num_classes ({num_classes}) must be positive")
    if style == "zoo":
        opset = 7
    elif opset < 10:
        raise ValueError(f"style {style!r} needs opset >= 10 (MaxPool ceil_mode), got {opset}")
    h, w = (int(v) for v in input_size)

    b = _Builder(style, opset, np.random.default_rng(seed), [], [], {})
    data = input_name or ("input.1" if style == "torchvision" else "data")
    c1, k1 = _CONV1[version]
    c1 = _scaled(c1, width_mult)
    # deepscale inputs are raw pixels 0..255: shrink conv1 so activations stay O(1).
    gain = 1.0 / 128 if style == "deepscale" else 1.0
    tv = style == "torchvision"
    x = b.conv(data, 3, c1, k1, 2, 0, "features.0" if tv else "conv1", relu=True, gain=gain)
    size = ((h - k1) // 2 + 1, (w - k1) // 2 + 1)
    if min(size) < 3:
        raise ValueError(f"input size {input_size} is too small for SqueezeNet {version}")
    # torchvision indices: conv 0, relu 1, pool 2, then fires and pools in order.
    tv_index = 2
    x, size = b.maxpool(x, "features.2" if tv else "pool1", size)
    pools = _POOLS[version][1:]
    for i, (cin, s, e1, e3) in enumerate(fire_config(version, width_mult)):
        fire = i + 2
        tv_index += 1
        p = f"features.{tv_index}" if tv else f"fire{fire}"
        sep = "." if tv else "/"
        sq = b.conv(x, cin, s, 1, 1, 0, f"{p}{sep}squeeze" if tv else f"{p}/squeeze1x1", relu=True)
        simple = bypass is not None and cin == e1 + e3 and fire % 2 == 1
        complex_ = bypass == "complex" and not simple
        # A sum of two branches doubles the variance; halve each branch's so depth does not blow up.
        g = _BYPASS_GAIN if simple or complex_ else 1.0
        ex1 = b.conv(sq, s, e1, 1, 1, 0, f"{p}{sep}expand1x1", relu=True, gain=g)
        ex3 = b.conv(sq, s, e3, 3, 1, 1, f"{p}{sep}expand3x3", relu=True, gain=g)
        y = b.concat([ex1, ex3], p)
        if simple:
            y = b.add(y, x, p)
        elif complex_:
            proj = b.conv(x, cin, e1 + e3, 1, 1, 0, f"{p}{sep}bypass" if tv else f"{p}/bypass1x1",
                          relu=False, gain=g)
            y = b.add(y, proj, p)
        x = y
        if fire in pools:
            tv_index += 1
            if min(size) < 3:
                raise ValueError(f"input size {input_size} is too small for SqueezeNet {version}: "
                                 f"the feature map before pool{fire} is {size[0]}x{size[1]}")
            x, size = b.maxpool(x, f"features.{tv_index}" if tv else f"pool{fire}", size)

    c_last = fire_config(version, width_mult)[-1]
    c_last = c_last[2] + c_last[3]
    if style != "deepscale" and dropout:
        x = b.dropout(x, "classifier.0")
    x = b.conv(x, c_last, num_classes, 1, 1, 0, "classifier.1" if tv else "conv10", relu=True)
    # torchvision: ReLU is classifier.2; conv() named it from _torch_activation("classifier.1").
    if style == "deepscale":
        pool_out = "pool10"
        b.nodes.append(helper.make_node("GlobalAveragePool", [x], [pool_out], name=""))
        b.nodes.append(helper.make_node("Flatten", [pool_out], ["pool10_flat"], name="", axis=1))
        b.nodes.append(helper.make_node("Softmax", ["pool10_flat"], ["prob"], name="", axis=1))
        out_name, out_shape = "prob", [1, num_classes]
    else:
        if style == "torchvision":
            op = "GlobalAveragePool" if avgpool == "global" else "AveragePool"
            pname = f"/classifier/classifier.3/{op}"
            pool_out = f"{pname}_output_0"
        else:
            pname = pool_out = b.zoo_name("pool") + "_fwd"
        if avgpool == "global" and style == "torchvision":
            b.nodes.append(helper.make_node("GlobalAveragePool", [x], [pool_out], name=pname))
        else:
            b.nodes.append(helper.make_node("AveragePool", [x], [pool_out], name=pname,
                                            kernel_shape=list(size), strides=[1, 1], pads=[0, 0, 0, 0]))
        out_name = "output" if style == "torchvision" else "squeezenet0_flatten0_reshape0"
        if flatten == "flatten" and style == "torchvision":
            b.nodes.append(helper.make_node("Flatten", [pool_out], [out_name], name="/Flatten", axis=1))
        else:
            shape = b.init("/Constant_output_0" if tv else "reshape_attr_tensor", np.array([1, -1], np.int64))
            b.nodes.append(helper.make_node("Reshape", [pool_out, shape], [out_name],
                                            name="/Reshape" if tv else out_name))
        out_shape = [1, num_classes]

    inputs = [helper.make_tensor_value_info(data, TensorProto.FLOAT, [1, 3, h, w])]
    if style == "zoo":
        # IR version 3 lists every initializer as a graph input.
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in b.inits]
    graph = helper.make_graph(b.nodes, f"squeezenet{version}_{style}" + (f"_{bypass}" if bypass else ""),
                              inputs, [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
                              initializer=b.inits)
    ir_version = 3 if style == "zoo" else min(8, onnx.IR_VERSION)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version,
                              producer_name="sqzhw.models")
    onnx.checker.check_model(model)
    return model


def save_model(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write ``model`` to ``path`` (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
