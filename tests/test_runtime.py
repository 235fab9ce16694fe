"""Host-side helpers: input quantization, im2col lowering, memory image, output read-back, and the
golden backend end to end."""

import numpy as np
import pytest
from PIL import Image

from sqzhw import isa, runtime
from sqzhw.compiler.codegen import compile_graph
from sqzhw.compiler.testing import random_qgraph
from sqzhw.config import load_config
from sqzhw.golden import layers
from sqzhw.program import Im2col, Preprocess, ProgramError
from sqzhw.quant import requantize, wrap_int32

TINY = load_config("tiny")
SPEC = Preprocess(19, 17, "BGR", (100.0, 110.0, 120.0), (50.0, 60.0, 70.0))


@pytest.fixture(scope="module")
def program():
    g = random_qgraph("squeezenet1.1", (19, 17), width_mult=0.2, num_classes=11, seed=4)
    return g, compile_graph(g, TINY, SPEC)


@pytest.mark.parametrize("stride,pad,k", [(2, 1, 3), (1, 0, 3), (2, 3, 7), (1, 1, 3)])
def test_im2col_lowering_equals_conv(stride, pad, k):
    """The lowered 1x1 convolution (weights (Cout, kh*kw*Cin) in (ky, kx, c) order) is the conv."""
    rng = np.random.default_rng(k + stride)
    from sqzhw.compiler.testing import QGraphBuilder
    b = QGraphBuilder("l", (3, 15, 13), 1)
    b.conv("c", "input", 5, k, stride=stride, pad=pad)
    node = b.nodes[0]
    x = rng.integers(-128, 128, (3, 15, 13)).astype(np.int8)
    lo = Im2col(k, k, stride, stride, pad, pad, pad, pad)
    cols = runtime.im2col(x, lo, node.in_q.zero_point).astype(np.int64)
    w = node.weight.astype(np.int64).transpose(0, 2, 3, 1).reshape(5, -1)
    acc = np.einsum("oc,chw->ohw", w, cols - node.in_q.zero_point) + node.bias.astype(np.int64)[:, None, None]
    y = requantize(wrap_int32(acc), node.multiplier[:, None, None], node.shift[:, None, None],
                   node.out_q.zero_point, node.relu)
    np.testing.assert_array_equal(y, layers.conv(x, node))


def test_quantize_and_lower_input(program):
    g, p = program
    x = np.random.default_rng(0).normal(0, 1, (3, 19, 17)).astype(np.float32)
    q = runtime.quantize_input(p, x)
    np.testing.assert_array_equal(q, layers.quantize_input(x, g.input_q))
    lowered = runtime.lower_input(p, q)
    assert p.input.lowering is not None
    assert lowered.shape == (27, 9, 8)
    assert lowered.dtype == np.int8
    for ky, kx, c, oy, ox in [(0, 0, 0, 0, 0), (2, 1, 2, 3, 5), (1, 2, 1, 8, 7)]:
        assert lowered[(ky * 3 + kx) * 3 + c, oy, ox] == q[c, oy * 2 + ky, ox * 2 + kx]
    with pytest.raises(ProgramError, match="input shape"):
        runtime.quantize_input(p, x[:, :5])
    with pytest.raises(ProgramError, match="int8"):
        runtime.lower_input(p, q.astype(np.int16))


def test_memory_image_layout(program):
    _, p = program
    raw = bytes(range(256)) * (p.region("input").size // 256) + bytes(p.region("input").size % 256)
    mem = runtime.memory_image(p, raw)
    assert len(mem) == p.memory_size
    assert isa.unpack_program(bytes(mem[:len(p.instructions) * 16])) == p.instructions
    w = p.region("weights")
    assert bytes(mem[w.base:w.base + len(p.image)]) == p.image
    i = p.region("input")
    assert bytes(mem[i.base:i.base + len(raw)]) == raw
    for r in p.regions:
        assert r.base % 64 == 0
    with pytest.raises(ProgramError, match="does not fit"):
        runtime.memory_image(p, bytes(i.size + 1))


def test_read_output_dequantizes(program):
    _, p = program
    out = p.output
    mem = bytearray(p.memory_size)
    sums = np.arange(out.channels, dtype=np.int32) * 1000 - 3000
    slots = np.zeros(out.size // 4, "<i4")
    slots[list(out.channel_index)] = sums
    mem[out.base:out.base + out.size] = slots.tobytes()
    got, logits = runtime.read_output(p, mem)
    np.testing.assert_array_equal(got, sums)
    np.testing.assert_allclose(logits, (sums - out.pixels * out.zero_point) * out.scale / out.pixels)


def test_run_golden_from_image_file_and_array(program, tmp_path):
    g, p = program
    rgb = np.random.default_rng(5).integers(0, 256, (30, 25, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(rgb).save(path)
    from_file = runtime.run_golden(p, path)
    from_array = runtime.run_golden(p, rgb)
    x = runtime.prepare_image(p, rgb)
    assert x.shape == (3, 19, 17) and x.dtype == np.float32
    from_x = runtime.run_golden(p, x)
    ref = layers.run_quantized(g, runtime.quantize_input(p, x))
    for r in (from_file, from_array, from_x):
        np.testing.assert_array_equal(r.sums, ref[g.output])
        np.testing.assert_allclose(r.logits, layers.dequantize_output(ref[g.output], g))
        assert r.cycles_estimate > 0


def test_golden_backend_shape_and_errors(program):
    _, p = program
    x = np.zeros((3, 19, 17), np.float32)
    mem, counters = runtime.GoldenBackend().run(p, runtime.input_bytes(p, x))
    assert isinstance(mem, bytearray) and len(mem) == p.memory_size
    assert counters["cycles"] == counters["est_cycles"] > 0 and counters["insns"] == len(p.instructions)
    from sqzhw.program import Program
    broken = Program.from_bytes(p.to_bytes())
    broken.instructions = broken.instructions[:-1]  # no END: the engine runs off the end
    with pytest.raises(runtime.GoldenError, match="FETCH_RANGE"):
        runtime.GoldenBackend().run(broken, runtime.input_bytes(broken, x))
