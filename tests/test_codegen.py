"""The code generator, proved by the ISA golden model against the layer reference: every tensor
placement of the compiled program equals the reference tensor byte for byte, and the executor's
hazard check proves the wait flags."""

import time

import numpy as np
import pytest
from amaranth.lib.enum import Enum

from sqzhw import isa, runtime
from sqzhw.compiler import tiling
from sqzhw.compiler.codegen import CodegenError, compile_graph, lowered_name
from sqzhw.compiler.testing import QGraphBuilder, random_qgraph
from sqzhw.config import AccelConfig, load_config
from sqzhw.golden.executor import Executor, decode_fields
from sqzhw.golden.layers import run_quantized
from sqzhw.program import Preprocess

TINY = load_config("tiny")
DEFAULT = load_config("default")
WIDE = AccelConfig("r4c8", rows=4, cols=8, act_buf_entries=2048, wgt_buf_tiles=256, acc_buf_entries=512,
                   out_buf_entries=1024, param_buf_entries=64, ext_data_bits=32)


def chain(qgraph, config, seed=0, check_lowering=True):
    """Compile, run the executor, compare every placed tensor with the layer reference."""
    c, h, w = qgraph.input_shape
    program = compile_graph(qgraph, config, Preprocess(h, w))
    x = np.random.default_rng(seed).integers(-128, 128, qgraph.input_shape).astype(np.int8)
    ref = run_quantized(qgraph, x)
    lowered = runtime.lower_input(program, x)
    mem = runtime.memory_image(program, program.input.placement.pack(lowered, config.rows))
    before = bytes(mem)
    res = Executor(config, mem, program.writable).run(program.insn_base, len(program.instructions))
    assert res.done, res.message
    lo, hi = program.writable
    assert bytes(mem[:lo]) == before[:lo]
    compared = 0
    for t in program.tensors:
        if t.name in ref:
            got = t.unpack(bytes(mem[t.base:t.base + t.size_bytes(config.rows)]), config.rows)
            np.testing.assert_array_equal(got, ref[t.name], err_msg=f"tensor {t.name}")
            compared += 1
    assert compared >= len([n for n in qgraph.nodes if n.op != "GlobalAveragePool"])
    sums, logits = runtime.read_output(program, mem)
    np.testing.assert_array_equal(sums, ref[qgraph.output])
    if program.input.lowering is not None and check_lowering:
        assert lowered_name(qgraph.input) in [t.name for t in program.tensors]
    return program, res


KIND_SIZES = {"squeezenet1.1": 35, "squeezenet1.0": 39, "simple_bypass": 39, "complex_bypass": 39}


@pytest.mark.parametrize("config", [TINY, DEFAULT, WIDE], ids=["tiny", "default", "4x8"])
@pytest.mark.parametrize("kind", list(KIND_SIZES))
def test_chain_every_layer(kind, config):
    g = random_qgraph(kind, KIND_SIZES[kind], width_mult=0.3, num_classes=37, seed=11)
    program, res = chain(g, config)
    assert program.input.lowering is not None
    assert sum(layer.est_cycles for layer in program.layers) > 0


def test_fire_without_lowering_and_odd_channels():
    g = random_qgraph("fire", (7, 9), width_mult=0.35, num_classes=13, seed=5, in_channels=10)
    program, _ = chain(g, TINY)
    assert program.input.lowering is None
    concat = program.tensor("fire2/concat")
    # 22 + 22 channels: each part starts on a 4-lane block
    assert [(s.logical, s.physical, s.count) for s in concat.segments] == [(0, 0, 22), (22, 24, 22)]


def _single(in_shape, build, seed=0):
    b = QGraphBuilder("corner", in_shape, seed)
    return b.gap(build(b))


def _small(name, **kw):
    base = dict(rows=4, cols=4, act_buf_entries=1024, wgt_buf_tiles=256, acc_buf_entries=256,
                out_buf_entries=512, param_buf_entries=16, ext_data_bits=32)
    base.update(kw)
    return AccelConfig(name, **base)


def test_halo_bands():
    cfg = _small("halo", act_buf_entries=256)
    g = _single((8, 20, 20), lambda b: b.conv("c3", "input", 8, 3, pad=1))
    plan = tiling.plan_conv(cfg, "c3", 2, 2, 20, 20, 20, 20, 3, 1)
    assert plan.bh < 20 and plan.cb == 2
    chain(g, cfg)


def test_stride2_bands_and_width_tiles():
    cfg = _small("s2", act_buf_entries=256, acc_buf_entries=16)
    g = _single((8, 17, 19), lambda b: b.conv("c3s2", "input", 12, 3, stride=2, pad=1))
    plan = tiling.plan_conv(cfg, "c3s2", 2, 3, 17, 19, 9, 10, 3, 2)
    assert plan.bw < 10 and plan.bh < 9
    chain(g, cfg)


def test_cin_split_accumulates():
    cfg = _small("split", wgt_buf_tiles=20)
    g = _single((40, 6, 5), lambda b: b.conv("deep", "input", 6, 3, pad=1))
    plan = tiling.plan_conv(cfg, "deep", 10, 2, 6, 5, 6, 5, 3, 1)
    assert plan.cb < 10
    program, _ = chain(g, cfg)
    assert any(isa.decode(w).opcode == isa.Opcode.CONV and isa.decode(w).payload.conv.accumulate
               for w in program.instructions)


def test_weights_chunked_group_order():
    cfg = _small("chunked", wgt_buf_tiles=40)
    g = _single((16, 9, 9), lambda b: b.conv("wide", "input", 40, 3, pad=1))
    plan = tiling.plan_conv(cfg, "wide", 4, 10, 9, 9, 9, 9, 3, 1)
    assert not plan.resident
    chain(g, cfg)


def test_ceil_pool_edges_with_small_buffers():
    cfg = _small("pool", act_buf_entries=128, out_buf_entries=16)

    def build(b):
        x = b.conv("c", "input", 9, 1)
        return b.maxpool("pool", x)
    g = _single((5, 14, 13), build)
    assert g.nodes[1].pads[2:] == (1, 0)  # ceil mode adds a bottom row
    chain(g, cfg)


def test_gap_tiled_over_pixels_and_add_tiled():
    cfg = _small("gap", act_buf_entries=64, out_buf_entries=32, acc_buf_entries=64)

    def build(b):
        a = b.conv("a", "input", 6, 1)
        c = b.conv("c", "input", 6, 1, relu=False)
        return b.add("sum", a, c)
    chain(_single((4, 11, 10), build), cfg)


def test_odd_sizes_squeezenet11_small_config():
    cfg = _small("odd", act_buf_entries=512, acc_buf_entries=64, out_buf_entries=128)
    chain(random_qgraph("squeezenet1.1", (29, 23), width_mult=0.2, num_classes=9, seed=2), cfg)


def _without_wait(word: int, unit: isa.Unit) -> int:
    op, fields = _fields(word)
    d = decode_fields(word)
    return isa.encode(op, set(d.wait) - {unit}, **fields)


def _fields(word):
    d = decode_fields(word)
    member = isa.fields_of(d.opcode)
    if member is None:
        return d.opcode, {}
    layout = isa.Payload.as_shape().members[member].as_shape()
    out = {}
    for name, value in d.fields.items():
        shape = layout.members[name]
        out[name] = shape(value) if isinstance(shape, type) and issubclass(shape, Enum) else value
    return d.opcode, out


def test_every_wait_flag_is_needed():
    """The compiled program runs hazard-free (chain tests), and dropping any one of its wait flags
    makes the executor report a hazard at that instruction: the flags are exactly what is needed."""
    g = random_qgraph("fire", 8, width_mult=0.25, num_classes=8, seed=1, in_channels=8)
    program = compile_graph(g, TINY, Preprocess(8, 8))
    flagged = [(i, u) for i, w in enumerate(program.instructions) for u in decode_fields(w).wait]
    assert len(flagged) > 10
    rng = np.random.default_rng(0)
    for k in rng.choice(len(flagged), size=min(25, len(flagged)), replace=False):
        i, unit = flagged[k]
        words = list(program.instructions)
        words[i] = _without_wait(words[i], unit)
        mem = runtime.memory_image(program, bytes(program.region("input").size))
        mem[program.insn_base:program.insn_base + len(words) * 16] = isa.pack_program(words)
        res = Executor(TINY, mem, program.writable, raise_hazards=False).run(program.insn_base, len(words),
                                                                             max_insns=i + 1)
        assert any(h.later == i and h.unit == unit for h in res.hazards), (i, unit, isa.disassemble(words[i]))


def test_layer_infos_and_progress():
    g = random_qgraph("squeezenet1.1", 35, width_mult=0.3, num_classes=10, seed=3)
    calls = []
    program = compile_graph(g, TINY, Preprocess(35, 35), progress=lambda i, n, name: calls.append((i, n, name)))
    assert [c[2] for c in calls[:len(g.nodes)]] == [n.name for n in g.nodes]
    assert len(program.layers) == len(g.nodes)
    conv1 = program.layers[0]
    assert conv1.macs == int(np.prod(g.nodes[0].weight.shape)) * 17 * 17
    assert conv1.weight_bytes > 0 and conv1.insn_count > 0 and conv1.est_cycles > 0
    for info in program.layers:
        assert 0 <= info.insn_start <= len(program.instructions)


def test_unsupported_layer_names_it():
    g = _single((8, 9, 9), lambda b: b.conv("c", "input", 8, 1))
    g.nodes[0].stride = (3, 3)
    # the first conv would be lowered; put a second conv after it to hit the check
    b = QGraphBuilder("bad", (8, 9, 9), 0)
    x = b.conv("ok", "input", 8, 1)
    x = b.conv("five", x, 8, 5, pad=2)
    with pytest.raises(CodegenError, match="'five'.*5x5"):
        compile_graph(b.gap(x), TINY, Preprocess(9, 9))


def test_untileable_layer_names_it():
    cfg = _small("cramped", act_buf_entries=16, acc_buf_entries=2)
    g = _single((8, 9, 30), lambda b: b.conv("big", "input", 8, 3, pad=1))
    with pytest.raises(CodegenError, match="'big'"):
        compile_graph(g, cfg, Preprocess(9, 30))


def test_accumulator_overflow_names_layer():
    g = _single((8, 5, 5), lambda b: b.conv("hot", "input", 4, 1))
    g.nodes[0].bias[:] = np.iinfo(np.int32).max - 10
    with pytest.raises(CodegenError, match="'hot'"):
        compile_graph(g, TINY, Preprocess(5, 5))


@pytest.mark.slow
@pytest.mark.parametrize("kind,size", [("squeezenet1.1", 227), ("squeezenet1.0", 227), ("simple_bypass", 224),
                                       ("complex_bypass", 224)])
def test_chain_full_size_default(kind, size):
    g = random_qgraph(kind, size, width_mult=1.0, num_classes=1000, seed=7)
    t0 = time.perf_counter()
    program, res = chain(g, DEFAULT)
    macs = sum(layer.macs for layer in program.layers)
    print(f"{kind} {size}: {len(program.instructions)} insns, {res.cycles} cycles, "
          f"utilization {macs / (DEFAULT.macs_per_cycle * res.cycles):.3f}, {time.perf_counter() - t0:.1f} s")


@pytest.mark.slow
def test_chain_tiny_squeezenet11_full_width():
    """Full channel counts on the 4x4 engine (many cout groups, cin blocks); 99x99 keeps it ~25 s."""
    chain(random_qgraph("squeezenet1.1", 99, width_mult=1.0, num_classes=1000, seed=8), TINY)


@pytest.mark.slow
@pytest.mark.models
@pytest.mark.parametrize("which", ["1.1", "1.0"])
def test_chain_real_models(which, request):
    path = request.getfixturevalue("squeezenet11_path" if which == "1.1" else "squeezenet10_path")
    from sqzhw.compiler import frontend, quantize
    from sqzhw.preprocess import PRESETS
    spec = PRESETS["deepscale-1.1" if which == "1.1" else "deepscale-1.0"]
    graph = frontend.import_onnx(path)
    qgraph = quantize.quantize(graph, quantize.calibration_inputs(None, spec, count=2, seed=1))
    chain(qgraph, DEFAULT)


def test_padded_1x1_conv():
    """SqueezeNet 1.0's conv10 is a 1x1 conv with pad 1 (its border outputs see only padding)."""
    g = _single((8, 5, 6), lambda b: b.conv("c1p", b.conv("c0", "input", 8, 1), 6, 1, pad=1))
    assert g.shapes["c1p_out"] == (6, 7, 8)
    chain(g, TINY)


def test_no_add_unit_refuses_bypass_names_the_add():
    """An engine without the ADD unit (add_unit = false): a bypass network is refused naming its
    first ADD node; a network without ADD still compiles and runs bit-exactly."""
    cfg = load_config("icebreaker")
    assert not cfg.add_unit
    g = random_qgraph("simple_bypass", 39, width_mult=0.3, num_classes=7, seed=3)
    first_add = next(n for n in g.nodes if n.op == "Add")
    with pytest.raises(CodegenError, match=f"'{first_add.name}' \\(Add\\).*no ADD unit"):
        compile_graph(g, cfg, Preprocess(39, 39))
    chain(random_qgraph("squeezenet1.1", 27, width_mult=0.2, num_classes=7, seed=3), cfg)


def test_program_larger_than_the_config_memory_is_refused():
    """A network whose image does not fit the config's external address space (the iCEBreaker's
    128 KiB: ext_addr_bits = 17) is refused at compile time with the sizes, not at run time."""
    cfg = load_config("icebreaker")
    g = random_qgraph("squeezenet1.1", 35, width_mult=0.3, num_classes=7, seed=3)
    with pytest.raises(CodegenError, match=r"needs [\d,]+ bytes of external memory .*'icebreaker' addresses "
                                           r"131,072 \(ext_addr_bits = 17\)"):
        compile_graph(g, cfg, Preprocess(35, 35))
