"""bench/bench_board.py: the board frame-rate bench's helpers (fast) and its RTL frame measurement on
a reduced SqueezeNet 1.1 in Verilator (slow, rtl).

The slow tests run the same :func:`bench.bench_board.main` as ``make bench`` with a 1/8-width
SqueezeNet 1.1 at 48x48: on the ULX3S's memory with the ``small`` config (2x2 array, 16-bit SDRAM
model; the memory image fits the 64 KiB the system tests simulate, so it shares their cached
Verilator build), and on the ECPIX-5's own config and DDR3 model with the program preloaded through
the DDR3 model's backdoor.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench import bench_board as bb
from sqzhw.config import load_config

SMALL_NET = {"width_mult": 0.125, "num_classes": 10}
SMALL_SIZE = 48


# -- fast: pure helpers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("nbytes, ext, min_words, want", [
    (0, 2, 1, 1), (1, 2, 1, 1), (2, 2, 1, 1), (3, 2, 1, 2), (4096, 2, 1, 2048), (4098, 2, 1, 4096),
    (4_921_920, 2, 2048, 1 << 22), (56_960, 2, 2048, 32768), (100, 4, 2048, 2048), (7, 4, 1, 2),
])
def test_mem_words_for(nbytes, ext, min_words, want):
    got = bb.mem_words_for(nbytes, ext, min_words)
    assert got == want
    assert got & (got - 1) == 0 and got * ext >= nbytes
    assert got == min_words or (got // 2) * ext < nbytes     # the smallest such power of two


def test_mem_words_for_refuses_bad_arguments():
    with pytest.raises(ValueError, match="min_words"):
        bb.mem_words_for(100, 2, 3)
    with pytest.raises(ValueError, match="ext_bytes"):
        bb.mem_words_for(100, 0)


def test_frame_figures():
    r = bb.frame_figures(5_000_000, 50.0, uart_in_s=1.0, uart_out_s=0.5)
    assert r["cycles"] == 5_000_000
    assert math.isclose(r["frame_ms"], 100.0)
    assert math.isclose(r["fps_engine"], 10.0)
    assert math.isclose(r["fps_with_uart"], 1 / 1.6)
    with pytest.raises(ValueError, match="positive"):
        bb.frame_figures(0, 50.0, 0, 0)


def test_compare_sums():
    a = np.arange(10, dtype=np.int32) - 5
    assert bb.compare_sums(a, a.copy()) is None
    b = a.copy()
    b[7] += 1
    msg = bb.compare_sums(b, a)
    assert msg is not None and "1 of 10" in msg and "index 7" in msg
    assert "shape" in bb.compare_sums(a[:9], a)
    assert "integers" in bb.compare_sums(a.astype(np.float64), a)


def test_model_figures_ddr3():
    """The ECPIX-5's cross-check charges the DDR3 controller's modelled rate, not the SDRAM's."""
    from rtl_gen.ddr3 import MT41K256M16, DDR3Timing, throughput_model

    config = load_config("ecpix5")
    program = bb.compile_network(config, input_size=SMALL_SIZE, **SMALL_NET)
    m = bb.model_figures(program, config.clock_mhz, "ddr3-model")
    tp = throughput_model(MT41K256M16, DDR3Timing(), config.clock_mhz)
    assert m["memory"] == "ddr3-model" and "sdram_seq_read_cycles_per_word" not in m
    assert m["ddr3_seq_read_cycles_per_word"] == tp["seq_read"] > 1.0
    assert m["cycles"] > m["cycles_ideal_memory"] > 0
    sdram = bb.model_figures(program, config.clock_mhz, "sdram-model")
    assert sdram["cycles"] != m["cycles"]      # the memory kind changes the prediction
    _, row_miss = bb.memory_rates("ddr3-model", config.clock_mhz)
    assert row_miss > 2
    with pytest.raises(ValueError, match="memory = 'bram'"):
        bb.model_figures(program, config.clock_mhz, "bram")


def test_model_mem_words_keeps_the_ddr3_calibration_words_free():
    from rtl_gen.ddr3 import DDR3Controller

    # A program that fills 8 KiB exactly needs the next power of two on DDR3 (calibration words on
    # top), not on the SDRAM.
    assert bb.model_mem_words("sdram-model", 1 << 23, 2) == 1 << 22
    assert bb.model_mem_words("ddr3-model", 1 << 23, 8) == 1 << 21
    assert bb.model_mem_words("ddr3-model", (1 << 23) - 8 * DDR3Controller.CALIB_WORDS, 8) == 1 << 20
    assert bb.model_mem_words("ddr3-model", 100, 8) == 2048          # one row per bank
    with pytest.raises(ValueError, match="memory = 'spram'"):
        bb.model_mem_words("spram", 100, 2)


def test_compare_boards_and_main_arguments(tmp_path):
    def section(fps, uart, mhz, source="report"):
        rate = {"fps_engine": fps, "fps_with_uart": uart, "mhz": mhz}
        return {"rates": {"Fmax": rate, "config clock": rate}, "fmax_source": source, "frame_source": "rtl"}

    c = bb.compare_boards({"ulx3s": section(4.0, 0.5, 43.8), "ecpix5": section(6.0, 0.6, 60.0, "config clock")})
    assert c["reference"] == "ulx3s"
    assert math.isclose(c["ratio_fps_engine"]["ecpix5"], 1.5) and c["ratio_fps_engine"]["ulx3s"] == 1.0
    assert math.isclose(c["ratio_fps_with_uart"]["ecpix5"], 1.2)
    assert c["fmax_source"]["ecpix5"] == "config clock" and c["mhz"]["ulx3s"] == 43.8
    # A board whose run failed has no rates and is left out; one board alone has no comparison.
    assert bb.compare_boards({"ulx3s": section(4.0, 0.5, 43.8), "ecpix5": {"error": "x"}}) is None
    with pytest.raises(ValueError, match="boards = \\('arty',\\)"):
        bb.main(tmp_path, boards=("arty",))
    assert bb.BOARDS["ecpix5"].report.parts[-2:] == ("ecpix5-ecpix5", "report.json")
    assert bb.REPORT == bb.BOARDS["ulx3s"].report


def test_model_figures_and_uart():
    config = load_config("small")
    program = bb.compile_network(config, input_size=SMALL_SIZE, **SMALL_NET)
    m = bb.model_figures(program, config.clock_mhz)
    # The SDRAM costs something over an ideal memory, and no unit is busy longer than the frame.
    assert m["cycles"] > m["cycles_ideal_memory"] > 0
    assert set(m["unit_busy"]) == set(bb.UNIT_COUNTERS)
    assert all(0 < v <= m["cycles"] for v in m["unit_busy"].values())
    assert m["sdram_seq_read_cycles_per_word"] >= 1.0
    # 10 bits per byte plus framing: more than the raw bits, less than twice them.
    t = bb.uart_seconds(100_000, 115200)
    assert 100_000 * 10 / 115200 < t < 2 * 100_000 * 10 / 115200


def test_uart_seconds_link_model():
    """Stop-and-wait without turnaround is the line time of both directions (as before the window);
    each response wait adds the USB turnaround; a window hides it, down to the request line time."""
    n, baud = 400_000, 1_000_000
    frames = -(-n // 1024)
    line = (n + frames * (13 + 4)) * 10 / baud
    assert bb.uart_seconds(n, baud, window=1, turnaround_s=0) == line
    assert bb.uart_seconds(n, baud, window=1, turnaround_s=0.016) == pytest.approx(line + frames * 0.016)
    windowed = bb.uart_seconds(n, baud, window=4, turnaround_s=0.016)
    assert (n + frames * 10) * 10 / baud < windowed < line + 0.02          # one turnaround, not 391
    assert bb.uart_seconds(n, baud) < bb.uart_seconds(n, baud, window=1)   # the default: windowed, 1 ms
    # reads stay stop-and-wait
    assert bb.uart_seconds(n, baud, request=False, window=8) == bb.uart_seconds(n, baud, request=False,
                                                                                window=1)


def test_without_zero_init_drops_only_large_zero_memories():
    """The export shortcut the 4 Mi-word SDRAM model needs (sqzhw.driver.sim_transport)."""
    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out

    from sqzhw.driver.sim_transport import _without_zero_init

    class Top(wiring.Component):
        def __init__(self):
            super().__init__({"addr": In(12), "a": Out(8), "b": Out(8)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.zeros = zeros = Memory(shape=8, depth=4096, init=[])
            m.submodules.lut = lut = Memory(shape=8, depth=4096, init=[3] * 4096)
            ra, rb = zeros.read_port(domain="comb"), lut.read_port(domain="comb")
            m.d.comb += [ra.addr.eq(self.addr), rb.addr.eq(self.addr), self.a.eq(ra.data), self.b.eq(rb.data)]
            return m

    with _without_zero_init(1024):
        text = verilog.convert(Top(), name="top")
    assert "zeros[4095] = " not in text           # the all-zero memory has no initial contents
    assert "lut[4095] = 8'h03" in text          # a memory with contents keeps them
    assert "zeros[4095] = " in verilog.convert(Top(), name="top")   # and only inside the context


def test_preload_file_and_hook(tmp_path):
    """The SDRAM model's preload backdoor (sqzhw.driver.sim_transport): the $readmemh file and the
    hook in the exported Verilog."""
    from sqzhw.driver.sim_transport import SystemSimError, _add_preload_hook, write_preload_file

    path = tmp_path / "image.hex"
    n = write_preload_file(path, [(4, bytes([1, 2, 3, 4])), (0x100, bytes([0xAB, 0xCD]))], 2, 1024)
    assert n == 3
    assert path.read_text().split() == ["@2", "0201", "0403", "@80", "cdab"]    # little-endian words
    with pytest.raises(ValueError, match="aligned"):
        write_preload_file(path, [(1, b"ab")], 2, 1024)
    with pytest.raises(ValueError, match="outside"):
        write_preload_file(path, [(1022, b"abcd")], 2, 1024)
    with pytest.raises(ValueError, match="overlaps"):
        write_preload_file(path, [(0, b"abcd"), (2, b"ab")], 2, 1024)

    verilog = ("module \\top.sdram_model (clk);\n  reg [15:0] storage [1023:0];\nendmodule\n"
               "module \\top.other (clk);\n  reg [7:0] storage [3:0];\nendmodule\n")
    out = _add_preload_hook(verilog)
    model = out[:out.index("endmodule")]
    assert '$value$plusargs("sqzhw_preload=%s"' in model and "$readmemh(preload_file, storage)" in model
    assert out.count("$readmemh(") == 1
    with pytest.raises(SystemSimError, match="one SDRAM model"):
        _add_preload_hook(verilog.replace("sdram_model", "memory"))

    # The DDR3 model's module: found by its own name, never the SDRAM model's.
    ddr3 = ("module \\top.other (clk);\n  reg [7:0] storage [3:0];\nendmodule\n"
            "module \\top.ddr3_model (clk);\n  reg [63:0] storage [4095:0];\nendmodule\n")
    out = _add_preload_hook(ddr3, "ddr3-model")
    model = out[out.index("module \\top.ddr3_model"):]
    assert "$readmemh(preload_file, storage)" in model and out.count("$readmemh(") == 1
    assert _add_preload_hook(verilog, "sdram-model") == _add_preload_hook(verilog)
    with pytest.raises(SystemSimError, match="one DDR3 model"):
        _add_preload_hook(verilog, "ddr3-model")
    with pytest.raises(SystemSimError, match="no `storage` memory"):
        _add_preload_hook(ddr3.replace("[63:0] storage", "[63:0] cells"), "ddr3-model")
    with pytest.raises(ValueError, match="memory = 'bram'"):
        _add_preload_hook(ddr3, "bram")
    # 64-bit words for the DDR3 model's storage.
    assert write_preload_file(path, [(8, bytes(range(8)))], 8, 1024) == 1
    assert path.read_text().split() == ["@1", "0706050403020100"]


def test_uart_times_at_each_board_host_link_rate(tmp_path, monkeypatch):
    """The UART times use each board's host-link rate (ULX3S 2 Mbaud on its FT231X, ECPIX-5 6 Mbaud
    on its FT2232H), printed beside them with the bridge; a build report naming its bridge gives
    the bitstream's rate, an older one (1 Mbaud for every board then) gives way to the default."""
    monkeypatch.setattr(bb, "_read_report", lambda board, config, say: None)   # whatever build/ holds
    lines = []
    data = bb.main(tmp_path, rtl=False, input_size=SMALL_SIZE, graph_kwargs=SMALL_NET, progress=lines.append)
    entries = data["boards"]
    assert (entries["ulx3s"]["baud"], entries["ulx3s"]["bridge"]) == (2_000_000, "FTDI FT231X")
    assert (entries["ecpix5"]["baud"], entries["ecpix5"]["bridge"]) == (6_000_000, "FTDI FT2232H")
    for entry in entries.values():
        assert entry["baud_source"] == "board default"
        assert math.isclose(entry["uart_input_s"], bb.uart_seconds(entry["input_bytes"], entry["baud"]))
        assert math.isclose(entry["uart_output_s"], bb.uart_seconds(entry["output_bytes"], entry["baud"],
                                                                    request=False))
        assert math.isclose(entry["uart_program_s"], bb.uart_seconds(entry["program_bytes"], entry["baud"]))
    assert data["baud"] == 2_000_000
    assert data["comparison"]["baud"] == {"ulx3s": 2_000_000, "ecpix5": 6_000_000}
    text = "\n".join(lines)
    assert "UART at 2000000 baud (FTDI FT231X, board default)" in text
    assert "UART at 6000000 baud (FTDI FT2232H, board default)" in text
    assert "frames/s with the UART at 2 Mbaud" in text and "with the UART at 6 Mbaud)" in text

    board, config = bb.BOARDS["ulx3s"], load_config("ulx3s")
    new = {"baud": 1_000_000, "uart_divisor": 50, "bridge": "FTDI FT231X"}   # built with --baud 1000000
    assert bb.host_link(board, config, new) == {"baud": 1_000_000, "bridge": "FTDI FT231X",
                                                "source": "build report"}
    old = {"baud": 1_000_000, "uart_divisor": 50}
    assert bb.host_link(board, config, old)["baud"] == 2_000_000
    # the small config's 25 MHz: 2 Mbaud would be 12.5 cycles per bit
    assert bb.host_link(board, load_config("small"), None)["baud"] == 1_000_000

    def no_boards(name):
        raise ImportError("No module named 'amaranth_boards'")

    monkeypatch.setattr("boards.get_board", no_boards)   # the board modules need amaranth-boards
    assert bb.host_link(board, config, None)["baud"] == bb.host_link(board, config, old)["baud"] == 1_000_000


# -- slow: the RTL frame measurement ------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.rtl
def test_rtl_frame_on_reduced_squeezenet(tmp_path):
    """The bench's measurement on a reduced network: bit-exact with the golden executor, the RTL's
    cycle count within 0.5x..2x of the cycle model's, and every JSON field written."""
    pytest.importorskip("boards.common", reason="boards.common (SystemTop) has not landed")
    from sim.runner import simulator_available
    problem = simulator_available("verilator")
    if problem:
        pytest.skip(problem)

    lines = []
    summary = bb.main(tmp_path, boards=("ulx3s",), config_name="small", input_size=SMALL_SIZE,
                      graph_kwargs=SMALL_NET, progress=lines.append)
    rtl = summary["measurement"]
    np.testing.assert_array_equal(rtl["sums"], rtl["golden_sums"])
    assert rtl["sums"].dtype.kind == "i" and np.any(rtl["sums"] != 0)   # not a vacuous comparison
    assert rtl["bit_exact"] and rtl["mismatch"] is None

    c = rtl["counters"]
    assert rtl["cycles"] == c["CYCLES"] > 0
    assert 0.5 <= rtl["ratio_rtl_model"] <= 2.0, (rtl["cycles"], rtl["model_prediction"]["cycles"])
    assert c["INSNS"] == rtl["instructions"]
    assert 0 < c["ARRAY_ACTIVE"] <= c["COMPUTE_BUSY"] <= c["CYCLES"]
    assert 0 < c["LOAD_BUSY"] <= c["CYCLES"] and 0 < c["STORE_BUSY"] <= c["CYCLES"]
    assert rtl["mem_words"] == 32768 and rtl["link_retries"] == 0
    # The engine ran for part of the inference's simulated cycles (the rest: input and output transfers).
    assert c["CYCLES"] < rtl["infer"]["cycles"]

    data = json.loads((tmp_path / "bench_board.json").read_text())
    assert data["frame_source"] == "rtl"
    for key in ("fmax_mhz", "baud", "uart_input_s", "uart_output_s", "uart_program_s", "rates",
                "model_rates", "rtl_rates"):
        assert key in data, key
    r = data["rtl"]
    for key in ("cycles", "counters", "model_prediction", "ratio_rtl_model", "bit_exact", "mem_words",
                "build_s", "sim_wall_s", "sim_cycles", "sim_cycles_per_s", "load", "infer"):
        assert key in r, key
    assert r["cycles"] == rtl["cycles"] and r["bit_exact"] is True
    for label in ("config clock", "Fmax"):
        rate = data["rates"][label]
        assert rate["cycles"] == rtl["cycles"]
        assert math.isclose(rate["frame_ms"], rtl["cycles"] / (rate["mhz"] * 1e3))
        assert data["model_rates"][label]["cycles"] > 0
    assert summary["rtl"]["cycles"] == rtl["cycles"]
    assert (tmp_path / "bench_board_units.png").stat().st_size > 1000
    # Progress went through the callback: compile, build, load, inference.
    text = "\n".join(lines)
    for word in ("compiling", "Verilator build", "loading the program", "inference done"):
        assert word in text, word


@pytest.mark.slow
@pytest.mark.rtl
def test_rtl_frame_on_ecpix5_ddr3_with_preload(tmp_path):
    """The ECPIX-5's measurement: its own config (8x8, 64-bit words) on the DDR3 controller and
    model, the program preloaded through the DDR3 model's backdoor (and read back over the link by
    the driver's check), the reduced network bit-exact with the golden executor and the cycle
    count within 0.5x..2x of the DDR3-charged cycle model's; the board's own JSON entry."""
    pytest.importorskip("boards.common", reason="boards.common (SystemTop) has not landed")
    from sim.runner import simulator_available
    problem = simulator_available("verilator")
    if problem:
        pytest.skip(problem)

    lines = []
    summary = bb.main(tmp_path, boards=("ecpix5",), input_size=SMALL_SIZE, graph_kwargs=SMALL_NET,
                      progress=lines.append)
    rtl = summary["measurement"]
    np.testing.assert_array_equal(rtl["sums"], rtl["golden_sums"])
    assert rtl["sums"].dtype.kind == "i" and np.any(rtl["sums"] != 0)
    assert rtl["bit_exact"] and rtl["config"] == "ecpix5" and rtl["memory"] == "ddr3-model"
    assert rtl["load"]["preloaded"] and rtl["load"]["bytes"] > 0
    # The backdoor moved nothing over the link: the load phase (the driver's read-back check) took
    # fewer cycles than the stream link's 4 per byte would have for the program.
    assert rtl["load"]["cycles"] < 4 * rtl["load"]["bytes"], rtl["load"]
    assert rtl["mem_words"] == 8192 and rtl["link_retries"] == 0
    c = rtl["counters"]
    assert rtl["cycles"] == c["CYCLES"] > 0 and c["INSNS"] == rtl["instructions"]
    assert 0.5 <= rtl["ratio_rtl_model"] <= 2.0, (rtl["cycles"], rtl["model_prediction"]["cycles"])
    assert "ddr3_seq_read_cycles_per_word" in rtl["model_prediction"]

    data = json.loads((tmp_path / "bench_board.json").read_text())
    entry = data["boards"]["ecpix5"]
    assert entry["memory"] == "ddr3-model" and entry["frame_source"] == "rtl"
    assert entry["fmax_source"] in ("report", "config clock")
    assert entry["rates"]["Fmax"]["cycles"] == rtl["cycles"]
    assert data["comparison"] is None and data["board"] == "ecpix5"      # one board: nothing to compare
    assert (tmp_path / "bench_board_units_ecpix5.png").stat().st_size > 1000
    text = "\n".join(lines)
    assert "DDR3 model" in text and "preloaded (checked)" in text
