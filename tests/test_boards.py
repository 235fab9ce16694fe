"""Board tops: PLL settings, the memory arbiter, the simulated system top through the host link,
elaboration of every board, the Vivado-less Arty stop, and one real ECP5 bitstream (``bitstream``)."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import shutil
import struct

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from boards import BOARDS, DEFAULT_BOARD, get_board, host_link_rates
from boards.build import BuildError, board_table, build, label_clocks, overfull_resources, plot_report, silent_abc_failure
from boards.common import (BlockRAMMemory, BoardError, BoardTop, MemArbiter, MemCommandSlice, SPRAMMemory, SystemTop,
                           ecp5_pll, host_link_baud, ice40_pll, system_verilog, xilinx_ddr3_mmcm, xilinx_mmcm)
from rtl_gen.ddr3 import DDR3Controller
from rtl_gen.sdram import SDRAMTiming
from rtl_gen.testing import collect_quietly
from rtl_gen.sdram_model import Violation
from sqzhw import protocol
from sqzhw.config import load_config


def test_pll_settings():
    f, p = ecp5_pll(25.0, 50.0)
    assert f == pytest.approx(50.0)
    assert f == pytest.approx(25.0 / p["CLKI_DIV"] * p["CLKFB_DIV"])
    assert 400 <= f * p["CLKOP_DIV"] <= 800
    f, p = ice40_pll(12.0, 25.0)
    assert f == pytest.approx(12.0 * (p["DIVF"] + 1) / (p["DIVR"] + 1) / 2 ** p["DIVQ"])
    assert abs(f - 25.0) < 0.25
    f, p = xilinx_mmcm(100.0, 100.0)
    assert f == pytest.approx(100.0)
    f, p = xilinx_ddr3_mmcm(100.0, 80.0)    # the DDR3 PHY's sync, sys2x (+90 degrees), IDELAY reference
    vco = 100.0 * p["CLKFBOUT_MULT_F"] / p["DIVCLK_DIVIDE"]
    assert f == pytest.approx(80.0) and f == pytest.approx(vco / p["CLKOUT0_DIVIDE_F"])
    assert p["CLKOUT0_DIVIDE_F"] == 2 * p["CLKOUT1_DIVIDE"] == 2 * p["CLKOUT2_DIVIDE"]
    assert 600 <= vco <= 1200 and abs(vco / p["CLKOUT3_DIVIDE"] - 200.0) <= 10.0
    with pytest.raises(BoardError, match="MMCM: no setting reaches sync 1000.0 MHz"):
        xilinx_ddr3_mmcm(100.0, 1000.0)
    with pytest.raises(BoardError, match="ECP5 PLL"):
        ecp5_pll(25.0, 2000.0)


class _ArbiterBench(wiring.Component):
    """The arbiter on a block RAM, directly or (``sliced``) through a :class:`MemCommandSlice`."""

    def __init__(self, sliced: bool = False, memory: str = "bram"):
        self.arb = MemArbiter(2, 16, max_reads=4 if sliced or memory == "bram" else 2,
                              addr_bits=16 if memory == "spram" else 32)
        self.mem = BlockRAMMemory(16, 256) if memory == "bram" else SPRAMMemory(4 << 14)
        self.slice = MemCommandSlice(16) if sliced else None
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.arb, m.submodules.mem = self.arb, self.mem
        upstream = self.arb.mem
        if self.slice is not None:
            m.submodules.slice = self.slice
            wiring.connect(m, self.arb.mem, self.slice.up)
            upstream = self.slice.down
        for port in ("rd_cmd", "rd_data", "wr"):
            wiring.connect(m, getattr(upstream, port), getattr(self.mem, port))
        return m


@pytest.mark.parametrize("sliced,memory", [(False, "bram"), (True, "bram"), (False, "spram"), (True, "spram")],
                         ids=["direct", "command-slice", "spram-direct", "spram-command-slice"])
def test_arbiter_two_masters_random(sliced, memory):
    """Two masters on disjoint halves: each reads back its own writes, in order, under stalls (on
    the SPRAM, spread over all four blocks)."""
    dut = _ArbiterBench(sliced, memory)
    done = [False, False]

    def master(i):
        rng = random.Random(i)

        async def bench(ctx):
            port = dut.arb.masters[i]
            ref, expect = {}, []
            base = i * 128 if memory == "bram" else i * (1 << 13)

            async def offer(request, what: str) -> None:
                """Hold ``request`` valid until it is taken, draining read data meanwhile."""
                ctx.set(request.valid, 1)
                for _ in range(200):
                    ctx.set(port.rd_data.ready, rng.random() < 0.7)
                    _, _, ready, dv, dr, dp = await ctx.tick().sample(
                        request.ready, port.rd_data.valid, port.rd_data.ready, port.rd_data.payload)
                    if dv and dr:
                        assert dp == expect.pop(0)
                    if ready:
                        break
                else:
                    raise AssertionError(f"master {i}: {what} not accepted in 200 cycles")
                ctx.set(request.valid, 0)

            # issue and collect in one process: requests, then drain whatever is due
            for _ in range(150):
                addr = base + rng.randrange(128) + (rng.randrange(4) << 14 if memory == "spram" else 0)
                if rng.random() < 0.5:
                    value = rng.randrange(1 << 16)
                    ctx.set(port.wr.payload, {"addr": addr, "data": value})
                    await offer(port.wr, "write")
                    ref[addr] = value
                else:
                    ctx.set(port.rd_cmd.payload, addr)
                    await offer(port.rd_cmd, "read")
                    expect.append(ref.get(addr, 0))
            ctx.set(port.rd_data.ready, 1)
            for _ in range(100):
                if not expect:
                    break
                _, _, dv, dp = await ctx.tick().sample(port.rd_data.valid, port.rd_data.payload)
                if dv:
                    assert dp == expect.pop(0), f"master {i}: wrong read data"
            assert not expect, f"master {i}: {len(expect)} reads never returned"
            done[i] = True
        return bench

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(master(0))
    sim.add_testbench(master(1))
    sim.run_until(1e-8 * 20_000)
    assert done == [True, True]


def test_command_slice_keeps_read_after_write_order():
    """A write and a read of the same address offered in the same cycle: the write goes first and
    the read returns the new value; neither handshake depends combinationally on the memory."""
    sl = MemCommandSlice(16)
    mem = BlockRAMMemory(16, 64)
    top = Module()
    top.submodules.sl, top.submodules.mem = sl, mem
    for port in ("rd_cmd", "rd_data", "wr"):
        wiring.connect(top, getattr(sl.down, port), getattr(mem, port))
    got = []

    async def bench(ctx):
        up = sl.up
        ctx.set(up.rd_data.ready, 1)
        for value in (0x1234, 0xBEEF, 0x0042):
            ctx.set(up.wr.payload, {"addr": 5, "data": value})
            ctx.set(up.rd_cmd.payload, 5)
            ctx.set(up.wr.valid, 1)
            ctx.set(up.rd_cmd.valid, 1)
            wrote = read = False
            for _ in range(20):
                _, _, wr_ok, rd_ok, dv, dp = await ctx.tick().sample(
                    up.wr.ready, up.rd_cmd.ready, up.rd_data.valid, up.rd_data.payload)
                assert not (rd_ok and not wrote), "the read was taken before the write it follows"
                wrote |= bool(wr_ok)
                read |= bool(rd_ok)
                if dv:
                    got.append(dp)
                ctx.set(up.wr.valid, 0 if wrote else 1)
                if read:
                    ctx.set(up.rd_cmd.valid, 0)
                    break
            assert wrote and read, "slice did not take both commands in 20 cycles"
        for _ in range(10):
            _, _, dv, dp = await ctx.tick().sample(up.rd_data.valid, up.rd_data.payload)
            if dv:
                got.append(dp)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [0x1234, 0xBEEF, 0x0042]


def test_spram_write_wins_and_read_after_write():
    """SPRAMMemory: a write and a read offered together: the write is taken first, the read the
    next cycle returns the new word; a read word that waits for rd_data.ready holds every command
    off and stays put; each block keeps its own words."""
    mem = SPRAMMemory(4 << 14, primitive=False)
    got = []

    async def bench(ctx):
        ctx.set(mem.rd_data.ready, 1)
        for blk, value in enumerate((0x1234, 0xBEEF, 0x0042, 0x7777)):
            addr = (blk << 14) | 5
            ctx.set(mem.wr.payload, {"addr": addr, "data": value})
            ctx.set(mem.rd_cmd.payload, addr)
            ctx.set(mem.wr.valid, 1)
            ctx.set(mem.rd_cmd.valid, 1)
            _, _, wr_ok, rd_ok = await ctx.tick().sample(mem.wr.ready, mem.rd_cmd.ready)
            assert wr_ok and not rd_ok, "the write goes first"
            ctx.set(mem.wr.valid, 0)
            _, _, rd_ok = await ctx.tick().sample(mem.rd_cmd.ready)
            assert rd_ok
            ctx.set(mem.rd_cmd.valid, 0)
            _, _, dv, dp = await ctx.tick().sample(mem.rd_data.valid, mem.rd_data.payload)
            assert dv
            got.append(dp)
        # a stalled read word: commands wait, the word stays
        ctx.set(mem.rd_data.ready, 0)
        ctx.set(mem.rd_cmd.payload, 5)
        ctx.set(mem.rd_cmd.valid, 1)
        await ctx.tick()
        ctx.set(mem.rd_cmd.valid, 0)
        ctx.set(mem.wr.payload, {"addr": 6, "data": 0xAAAA})
        ctx.set(mem.wr.valid, 1)
        for _ in range(3):
            _, _, dv, dp, wr_ok = await ctx.tick().sample(mem.rd_data.valid, mem.rd_data.payload, mem.wr.ready)
            assert dv and dp == 0x1234 and not wr_ok
        ctx.set(mem.rd_data.ready, 1)
        _, _, wr_ok = await ctx.tick().sample(mem.wr.ready)
        assert wr_ok
        ctx.set(mem.wr.valid, 0)
        ctx.set(mem.rd_cmd.payload, 6)
        ctx.set(mem.rd_cmd.valid, 1)
        await ctx.tick()
        ctx.set(mem.rd_cmd.valid, 0)
        _, _, dv, dp = await ctx.tick().sample(mem.rd_data.valid, mem.rd_data.payload)
        assert dv and dp == 0xAAAA

    sim = Simulator(mem)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [0x1234, 0xBEEF, 0x0042, 0x7777]


def test_spram_primitives_on_ice40():
    """On the iCE40 UP the memory is four SB_SPRAM256KA instances; the sizes it takes."""
    from amaranth.back import rtlil
    text = rtlil.convert(SPRAMMemory(4 << 14, primitive=True), name="top")
    assert text.count("SB_SPRAM256KA") >= 4
    assert "SB_SPRAM256KA" not in rtlil.convert(SPRAMMemory(1 << 14), name="top")
    for bad in (100, 5 << 14, 0):
        with pytest.raises(ValueError, match="SPRAMMemory"):
            SPRAMMemory(bad)
    spec = get_board("icebreaker")
    top = BoardTop(spec, load_config(spec.config), engine="standin")
    assert spec.memory == "spram" and spec.mem_slice   # the slice shortens its critical path
    assert top.system.mem_bytes == 128 << 10
    del top
    collect_quietly()   # built only to inspect


FAST_SDRAM = SDRAMTiming(t_init=2000.0)


@pytest.mark.slow
def test_system_top_hostlink_roundtrip(memory="sdram-model"):
    """INFO, WRITE_MEM and READ_MEM through the host link's byte streams, the arbiter and the memory
    (the SDRAM controller on the cycle model, which must see no timing violation)."""
    cfg = load_config("small")
    top = SystemTop(cfg, memory, link="stream", engine="standin", sdram_timing=FAST_SDRAM,
                    mem_words=1 << 14)
    payload = bytes(random.Random(3).randrange(256) for _ in range(12))
    requests = [
        protocol.encode_request(protocol.Command.INFO, 1),
        protocol.encode_request(protocol.Command.WRITE_MEM, 2, struct.pack("<I", 0x100) + payload),
        protocol.encode_request(protocol.Command.READ_MEM, 3, struct.pack("<IH", 0x100, len(payload))),
    ]
    replies = []

    async def host(ctx):
        decoder = protocol.FrameDecoder(responses=True)
        ctx.set(top.host_tx.ready, 1)
        for req in requests:
            for byte in req:
                ctx.set(top.host_rx.valid, 1)
                ctx.set(top.host_rx.payload, byte)
                for _ in range(20_000):
                    _, _, ready, tv, tp = await ctx.tick().sample(top.host_rx.ready, top.host_tx.valid,
                                                                 top.host_tx.payload)
                    if tv:
                        replies.extend(decoder.feed(bytes([tp])))
                    if ready:
                        break
                else:
                    raise AssertionError("host link never took a request byte")
            ctx.set(top.host_rx.valid, 0)
            want = len(replies) + 1
            for _ in range(20_000):
                if len(replies) == want:
                    break
                _, _, tv, tp = await ctx.tick().sample(top.host_tx.valid, top.host_tx.payload)
                if tv:
                    replies.extend(decoder.feed(bytes([tp])))
            else:
                raise AssertionError(f"no reply to request {req[1]:#x} in 20000 cycles")
        if memory == "sdram-model":
            assert ctx.get(top.mem_violation) == Violation.NONE, ctx.get(top.mem_violation)

    sim = Simulator(top)
    sim.add_clock(1 / top.clk_hz)
    sim.add_testbench(host)
    sim.run_until(200_000 / top.clk_hz)
    assert len(replies) == 3, replies
    info, wr, rd = replies
    assert info.status == protocol.Status.OK and protocol.decode_info(info.payload)["tag"] == cfg.tag
    assert protocol.decode_info(info.payload)["mem_bytes"] == top.mem_bytes
    assert wr.status == protocol.Status.OK
    assert rd.status == protocol.Status.OK and rd.payload == payload


def test_system_verilog_for_simulators():
    """The full-system top converts to Verilog (SDRAM model included) with flat, named ports."""
    v = system_verilog(load_config("small"), engine="standin", mem_words=1 << 14)
    assert "module sqzhw_system(" in v
    for port in ("host_rx__valid", "host_rx__payload", "host_tx__ready", "mem_violation", "busy", "clk", "rst"):
        assert f" {port};" in v, port


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_elaborates(board, tmp_path):
    """Every board top goes through its amaranth-boards platform (pins, PLL, LEDs) with a quick
    stand-in engine; the build tree names the engine clock constraint."""
    spec = get_board(board)
    cfg = load_config(spec.config)
    top = BoardTop(spec, cfg, engine="standin")
    plan = spec.platform().prepare(top, name="top")
    files = "\n".join(str(v) for v in plan.files.values() if isinstance(v, str))
    assert abs(top.pll_mhz - cfg.clock_mhz) <= 0.02 * cfg.clock_mhz
    assert "EHXPLLL" in files or "SB_PLL40_PAD" in files or "MMCME2_BASE" in files or top.pll_params == {}
    if spec.memory == "sdram":
        assert "sdram" in files


@pytest.mark.parametrize("board", ["ecpix5", "orangecrab"])
def test_ddr3_boards_elaborate_with_the_ecp5_phy(board):
    """The DDR3 boards: controller + ECP5 PHY on the ``ddr3`` pins (the DDR primitives are in the
    design), PLL at twice the engine clock into ECLKSYNCB/CLKDIVF, both clocks constrained; with
    ``memory="bram"`` the block-RAM fallback has none of it."""
    spec = get_board(board)
    cfg = load_config(spec.config)
    assert spec.ddr3_geometry is not None
    top = BoardTop(spec, cfg, engine="standin", memory="ddr3")
    plan = spec.platform().prepare(top, name="top")
    il = plan.files["top.il"]
    lpf = plan.files["top.lpf"]
    for cell, count in (("DQSBUFM", 2), ("DDRDLLA", 1), ("ECLKSYNCB", 1), ("CLKDIVF", 1), ("EHXPLLL", 1),
                        ("IDDRX2DQA", 16), ("ODDRX2DQSB", 2), ("TSHX2DQSA", 2)):
        assert il.count(f"cell \\{cell} ") == count, cell
    assert top.pll_mhz == pytest.approx(cfg.clock_mhz, rel=0.02)
    assert top.pll_params["CLKOP_MHZ"] == pytest.approx(2 * cfg.clock_mhz, rel=0.02)
    freqs = sorted(float(line.split()[-2]) for line in lpf.splitlines() if line.startswith("FREQUENCY NET"))
    assert freqs == pytest.approx([cfg.clock_mhz * 1e6, 2 * cfg.clock_mhz * 1e6], rel=0.02), freqs
    assert 'IO_TYPE=SSTL' in lpf and f'{spec.ddr3_resource}_0__dqs__p' in lpf
    if board == "orangecrab":
        # its own DDR3 resource (amaranth-boards' has BA on a ball the package lacks), the bank's
        # virtual supply pins driven
        for ball in ("D6", "B7", "A6"):
            assert f'__ba__io[{("D6", "B7", "A6").index(ball)}]" SITE "{ball}"' in lpf, ball
        assert 'SITE "P5"' not in lpf and "ddr3_pseudo_power_0__vcc_virtual" in lpf
    # ECLK crosses the device through a bridge where the DDR3 pins are on both sides
    assert il.count("cell \\ECLKBRIDGECS ") == (1 if spec.ddr3_eclk_bridge else 0)
    assert spec.ddr3_eclk_bridge == (board == "orangecrab")
    # the read calibration's words at the top are not the host's
    assert top.system.mem_bytes == (spec.ddr3_geometry.words - DDR3Controller.CALIB_WORDS) * 8
    fallback = BoardTop(spec, cfg, engine="standin", memory="bram")
    il = spec.platform().prepare(fallback, name="top").files["top.il"]
    assert "DQSBUFM" not in il and fallback.system.mem_bytes == spec.bram_bytes == 128 << 10
    del top, fallback
    collect_quietly()


def test_ddr3_bad_combinations_name_the_board():
    """DDR3 only where there is a DDR3 part; a DDR3 board only switches to block RAM; the config's
    word must be a DDR3 burst (64 bits)."""
    with pytest.raises(BoardError, match="board ulx3s: memory = 'ddr3'"):
        BoardTop(get_board("ulx3s"), load_config("ulx3s"), engine="standin", memory="ddr3")
    with pytest.raises(BoardError, match="board ecpix5: memory = 'spram'"):
        BoardTop(get_board("ecpix5"), load_config("ecpix5"), engine="standin", memory="spram")
    with pytest.raises(BoardError, match="board orangecrab: .*ext_data_bits = 32, a DDR3 word"):
        BoardTop(get_board("orangecrab"), load_config("tiny"), engine="standin", memory="ddr3")
    collect_quietly()   # the half-built tops


@pytest.mark.slow
def test_ulx3s_elaborates_with_real_engine():
    spec = get_board("ulx3s")
    top = BoardTop(spec, load_config("ulx3s"), engine="real")
    spec.platform().prepare(top, name="top")
    assert top.system.engine_name == "Engine"


def test_bad_board_and_config():
    with pytest.raises(ValueError, match="unknown board 'nope'"):
        get_board("nope")
    with pytest.raises(BoardError, match="ext_data_bits = 32, the SDRAM is 16 bits"):
        SystemTop(load_config("tiny"), "sdram", engine="standin")
    collect_quietly()   # the half-built top


@pytest.mark.skipif(shutil.which("openFPGALoader") is None, reason="openFPGALoader is not installed "
                    "(scripts/setup.sh installs it from apt)")
def test_every_board_names_a_board_openfpgaloader_knows():
    import subprocess
    listing = subprocess.run(["openFPGALoader", "--list-boards"], capture_output=True, text=True, timeout=60).stdout
    known = {line.split()[0] for line in listing.splitlines() if line.strip()}
    for name in BOARDS:
        args = list(get_board(name).loader_args)
        assert "-b" in args, f"board {name}: loader_args {args} select no openFPGALoader board"
        assert args[args.index("-b") + 1] in known, f"board {name}: openFPGALoader knows no board {args}"


def test_silent_abc_failure_is_recognised():
    died = "2.46.16.5. Executing ABC9.\nRunning ABC command: \"/yosys-abc\" -s -f <abc-temp-dir>/abc.script 2>&1\n\n"
    assert silent_abc_failure(died)
    assert not silent_abc_failure(died + "ABC: + read_blif <abc-temp-dir>/input.blif\nEnd of script.\n")
    assert not silent_abc_failure("")


def test_overfull_resources_from_a_nextpnr_log():
    """A build that does not fit says which resources overflow (iCE40 lines as nextpnr prints them)."""
    log = """Info: Device utilisation:
Info: \t         ICESTORM_LC:   11400/   5280   215%
Info: \t        ICESTORM_RAM:     156/     30   520%
Info: \t        ICESTORM_DSP:       8/      8   100%
Info: \t      ICESTORM_SPRAM:       0/      4     0%
ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_RAM'
"""
    assert overfull_resources(log) == [("ICESTORM_LC", 11400, 5280), ("ICESTORM_RAM", 156, 30)]
    assert overfull_resources("Info: \t MULT18X18D:     101/    156    64%") == []


def test_report_plot(tmp_path):
    """Every build report comes with a resources-and-Fmax plot; no figures, no plot."""
    report = {"board": "ulx3s", "config": {"name": "ulx3s"}, "tag": "8x8_x",
              "utilization": {"MULT18X18D": {"used": 77, "available": 156},
                              "TRELLIS_COMB": {"used": 90_000, "available": 83_640},
                              "DCCA": {"used": 0, "available": 56}},
              "fmax": {"clk": {"achieved": 55.6, "constraint": 50.0}}}
    path = plot_report(report, tmp_path / "report.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_report({**report, "utilization": {}}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_board_table_lists_every_board_and_its_last_build(tmp_path):
    """``make boards``: one row per board with its FPGA and memory; a report for the current config
    shows its engine Fmax, one for an older config says it is stale."""
    (tmp_path / "ulx3s-ulx3s").mkdir()
    (tmp_path / "ulx3s-ulx3s" / "report.json").write_text(
        json.dumps({"tag": load_config("ulx3s").tag, "fmax_sync_mhz": 57.37}))
    (tmp_path / "ecpix5-ecpix5").mkdir()
    (tmp_path / "ecpix5-ecpix5" / "report.json").write_text(json.dumps({"tag": "8x8_old", "fmax_sync_mhz": 70.0}))
    lines = board_table(tmp_path).splitlines()
    assert len(lines) == 1 + len(BOARDS)
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(BOARDS)
    assert "LFE5U-85F" in rows["ulx3s"] and "57.4 MHz vs 50" in rows["ulx3s"] and "(default)" in rows["ulx3s"]
    assert "stale" in rows["ecpix5"] and "ddr3 512 MiB (or bram 128 KiB)" in rows["ecpix5"]
    assert "bram 128 KiB (or ddr3 128 MiB)" in rows["orangecrab"]
    assert "Vivado" in rows["arty"] and "xc7a35t" in rows["arty"]
    assert "host link" in lines[0] and "2 Mbaud (FT231X)" in rows["ulx3s"]
    assert "6 Mbaud (FT2232H)" in rows["ecpix5"] and "2 Mbaud (FT2232H)" in rows["icebreaker"]
    assert "1 Mbaud (USB-serial adapter)" in rows["orangecrab"] and "4 Mbaud (FT2232H)" in rows["arty"]


def test_clock_labels():
    """nextpnr names clocks after nets; the report says which is the engine's, the DRAM's and the
    oscillator's by their constraints, and leaves a clock it cannot place unlabelled."""
    fmax = {"$glbnet$por_clk": {"achieved": 57.4, "constraint": 50.0},
            "$glbnet$clkbuf.buf.i": {"achieved": 365.2, "constraint": 100.0},
            "$glbnet$eclk": {"achieved": 130.0, "constraint": 120.0},
            "$glbnet$other": {"achieved": 90.0, "constraint": 33.0}}
    label_clocks(fmax, 60.0, 100.0)
    assert [f["domain"] for f in fmax.values()] == ["", "oscillator", "sys2x (DRAM)", ""]
    label_clocks(fmax, 50.0, 25.0)
    assert fmax["$glbnet$por_clk"]["domain"] == "sync (engine)"


def test_uart_rate_from_the_engine_clock():
    """A board's default rate is the fastest its bridge makes exactly that its engine clock divides
    exactly (ULX3S: 2 Mbaud at 50 MHz, 1 Mbaud at the small config's 25 MHz); ``baud`` overrides
    it; a rate the clock cannot make (within 2 %) is refused with the board's name."""
    rates = {}
    for config, baud in (("ulx3s", None), ("small", None), ("ulx3s", protocol.DEFAULT_BAUD)):
        top = BoardTop(get_board("ulx3s"), load_config(config), engine="standin", baud=baud)
        rates[config, baud] = (top.baud, top.system.uart_divisor)
        del top
    collect_quietly()   # built only to inspect
    assert rates == {("ulx3s", None): (2_000_000, 25), ("small", None): (1_000_000, 25),
                     ("ulx3s", protocol.DEFAULT_BAUD): (protocol.DEFAULT_BAUD, 50)}
    with pytest.raises(BoardError, match="board ulx3s, config 'ulx3s': 4000000 baud at 50 MHz: divisor 12 is off"):
        BoardTop(get_board("ulx3s"), load_config("ulx3s"), engine="standin", baud=4_000_000)
    collect_quietly()   # the refused top


@pytest.mark.parametrize("board, bridge, baud, cycles", [
    ("ulx3s", "FTDI FT231X", 2_000_000, 25), ("ecpix5", "FTDI FT2232H", 6_000_000, 10),
    ("icebreaker", "FTDI FT2232H", 2_000_000, 9), ("arty", "FTDI FT2232H", 4_000_000, 25),
    ("orangecrab", "USB-serial adapter", 1_000_000, 60)])
def test_each_board_links_at_its_bridge_rate(board, bridge, baud, cycles):
    """Each board's bridge and default host-link rate at its own config, and the cycles per bit."""
    spec = get_board(board)
    clk = load_config(spec.config).clock_mhz * 1e6
    assert spec.bridge.name == bridge and host_link_baud(spec, clk) == baud
    assert round(clk / baud) == cycles and clk == cycles * baud
    # a board module may pin a rate; a clock the bridge shares no exact rate with keeps DEFAULT_BAUD
    assert host_link_baud(dataclasses.replace(spec, baud=115_200), clk) == 115_200
    if board == "orangecrab":   # 1 Mbaud is 27.5 cycles: the adapter's one rate is not exact
        assert host_link_baud(spec, 27.5e6) == protocol.DEFAULT_BAUD


def test_driver_tries_every_board_rate():
    """The driver's probe list is the boards' rates, the default board's first, DEFAULT_BAUD last."""
    from sqzhw.driver.transports import HOST_LINK_BAUDS

    rates = host_link_rates()
    assert rates == HOST_LINK_BAUDS
    spec = get_board(DEFAULT_BOARD)
    assert rates[0] == host_link_baud(spec, load_config(spec.config).clock_mhz * 1e6)
    assert rates[-1] == protocol.DEFAULT_BAUD


@pytest.mark.skipif(shutil.which("vivado") is not None, reason="Vivado is installed: the build would run")
def test_arty_without_vivado_names_tool_and_tree(tmp_path):
    with pytest.raises(BuildError, match="Vivado") as info:
        build("arty", out=tmp_path, engine="standin")
    tree = tmp_path / "arty-arty"
    assert str(tree) in str(info.value) and "Xilinx cell check" in str(info.value)
    assert (tree / "build_top.sh").exists() and (tree / "ddr3.xdc").exists()
    # the report has yosys's estimate against the xc7a35t and says it is one
    report = json.loads((tree / "report.json").read_text())
    assert "Vivado is not installed" in report["estimate"] and report["fmax"] == {}
    assert report["utilization"]["DSP48E1"]["available"] == 90
    assert 0 < report["utilization"]["flip-flops"]["used"] < 41_600
    assert "no place and route" in (tree / "report.txt").read_text()
    # the host link: the FT2232H's 4 Mbaud, 25 cycles per bit at 100 MHz
    assert (report["baud"], report["uart_divisor"], report["bridge"]) == (4_000_000, 25, "FTDI FT2232H")
    assert "host link    4 Mbaud (25 cycles per bit) to the FTDI FT2232H (up to 12 Mbaud)" in (
        tree / "report.txt").read_text()
    with pytest.raises(BuildError, match="arty-arty-bram"):
        build("arty", out=tmp_path, engine="standin", memory="bram")
    assert not (tmp_path / "arty-arty-bram" / "ddr3.xdc").exists()
    collect_quietly()


@pytest.mark.skipif(shutil.which("vivado") is not None, reason="Vivado is installed: the build would run")
def test_xilinx_build_refuses_what_the_estimate_says_cannot_fit(tmp_path, monkeypatch):
    """Without Vivado, a config yosys counts more cells for than the part has is refused with the
    cell and the numbers (here: a part shrunk to 100 flip-flops), not sent to an hour of Vivado."""
    import boards.xilinx as xilinx
    monkeypatch.setitem(xilinx.DEVICES, "xc7a35t", dataclasses.replace(xilinx.DEVICES["xc7a35t"], flip_flops=100))
    with pytest.raises(BuildError, match=r"config 'arty' does not fit the xc7a35ti: flip-flops \d+/100"):
        build("arty", out=tmp_path, engine="standin")
    collect_quietly()


def test_arty_ddr3_top_has_the_xc7_phy_mmcm_and_vref(tmp_path):
    """The Arty's default memory is its DDR3L: controller + 7-series PHY on the ``ddr3`` pins
    (serdes, delays, one IDELAYCTRL), one MMCM with four BUFG'd outputs (sync, sys2x, sys2x shifted
    90 degrees, the 200 MHz IDELAY reference) and no ``create_clock`` on them (Vivado derives them
    with their phases), the bank's internal VREF for SSTL135 in an extra XDC, the PHY's parameters
    (three rd_cycle settings) given to the controller; the whole top passes yosys's Xilinx cell
    check. ``memory="bram"`` has none of it."""
    from boards.build import xilinx_cell_check
    from rtl_gen.ddr3 import MT41K128M16
    from rtl_gen.xc7_ddr3 import phy_params as xc7_params
    spec = get_board("arty")
    cfg = load_config(spec.config)
    assert spec.memory == "ddr3" and spec.ddr3_geometry == MT41K128M16
    top = BoardTop(spec, cfg, engine="standin")
    plan = spec.platform().prepare(top, name="top")
    v, xdc = plan.files["top.v"], plan.files["top.xdc"]
    for cell, count in (("OSERDESE2", 45), ("ISERDESE2", 16), ("IDELAYE2", 16), ("IDELAYCTRL", 1), ("IOBUFDS", 2),
                        ("MMCME2_BASE", 1), ("BUFG", 4)):
        assert len(re.findall(rf"^\s*{cell} #?\(?", v, re.M)) == count, cell
    assert re.search(r"\.CLKOUT2_PHASE\(90\.0", v), "sys2x_90 must be 90 degrees"
    assert top.pll_mhz == pytest.approx(cfg.clock_mhz)
    p = top.pll_params
    assert p["CLKOUT0_DIVIDE_F"] == 2 * p["CLKOUT1_DIVIDE"] == 2 * p["CLKOUT2_DIVIDE"]
    vco = 100.0 * p["CLKFBOUT_MULT_F"] / p["DIVCLK_DIVIDE"]
    assert 600 <= vco <= 1200 and vco / p["CLKOUT3_DIVIDE"] == pytest.approx(200.0)
    assert [line for line in xdc.splitlines() if "create_clock" in line] == \
        ['create_clock -name clk100_0__io -period 10.0 [get_nets "clk100_0__io"]']
    assert "set_property INTERNAL_VREF 0.675 [get_iobanks 34]" in plan.files["ddr3.xdc"]
    assert 'read_xdc "ddr3.xdc"' in plan.files["top.tcl"]
    assert 'set_property IOSTANDARD "SSTL135" [get_ports "ddr3_0__dq__io\\[0]"]' in xdc
    assert 'set_property IN_TERM "UNTUNED_SPLIT_40" [get_ports "ddr3_0__dq__io\\[15]"]' in xdc
    assert top.system.ddr3_phy_params == xc7_params() and top.system.ddr3_phy_params.read_cycles == 3
    assert top.system.mem_bytes == (MT41K128M16.words - DDR3Controller.CALIB_WORDS) * 8 == (256 << 20) - 16
    xilinx_cell_check(v, "top", tmp_path)
    fallback = BoardTop(spec, cfg, engine="standin", memory="bram")
    plan = spec.platform().prepare(fallback, name="top")
    assert "OSERDESE2" not in plan.files["top.v"] and "ddr3.xdc" not in plan.files
    assert fallback.system.mem_bytes == spec.bram_bytes == 128 << 10
    del top, fallback
    collect_quietly()


def test_missing_host_tool_names_tool_board_and_tree(tmp_path, monkeypatch):
    """The OrangeCrab's build script runs ``dfu-suffix`` (dfu-util): without it the build stops
    before the toolchain, naming the tool, how to install it and the prepared tree."""
    assert "dfu-suffix" in get_board("orangecrab").host_tools
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if cmd == "dfu-suffix" else real_which(cmd, *a, **k))
    with pytest.raises(BuildError, match=r"board orangecrab: tool 'dfu-suffix' is not on the PATH.*apt-get install dfu-util") as info:
        build("orangecrab", out=tmp_path, engine="standin")
    tree = tmp_path / "orangecrab-orangecrab"
    assert str(tree) in str(info.value) and (tree / "build_top.sh").exists()
    assert not (tree / "build.log").exists()    # the toolchain never ran
    collect_quietly()


@pytest.mark.bitstream
def test_ecp5_bitstream_small(tmp_path):
    """The CI bitstream: ULX3S with the 2x2 ``small`` engine, SDRAM controller and host link."""
    report = build("ulx3s", "small", tmp_path, engine="real")
    out = tmp_path / "ulx3s-small"
    assert (out / "top.bit").stat().st_size > 100_000
    saved = json.loads((out / "report.json").read_text())
    assert saved["tag"] == load_config("small").tag and saved["engine"] == "Engine"
    assert saved["utilization"]["TRELLIS_COMB"]["used"] > 1000
    assert saved["utilization"]["DP16KD"]["used"] > 0
    assert report["fmax_sync_mhz"] is not None and report["fmax_sync_mhz"] >= 25.0, report["fmax"]
    assert "Fmax" in (out / "report.txt").read_text()


@pytest.mark.bitstream
@pytest.mark.parametrize("board", ["ulx3s", "ecpix5", "orangecrab"])
def test_ecp5_bitstream_board_config(tmp_path, board):
    """Each ECP5 board's own config (8x8 engine; the ECPIX-5 with the DDR3 controller and ECP5 PHY
    as external memory, the OrangeCrab with its default block RAM) places, routes, fits and meets its clock target (engine clock
    and, on the DDR3 boards, the 2x DDR clock): a change that breaks routing or timing on a board
    fails here, not on a user's machine. The DDR I/O paths themselves are not timed by nextpnr."""
    config = load_config(get_board(board).config)
    report = build(board, None, tmp_path, engine="real")
    assert report["tag"] == config.tag
    util = report["utilization"]
    assert util["MULT18X18D"]["used"] >= config.rows * config.cols   # the array is on DSPs
    assert all(u["used"] <= u["available"] for u in util.values()), util
    assert (tmp_path / f"{board}-{config.name}" / "top.bit").stat().st_size > 100_000
    assert report["fmax_sync_mhz"] is not None and report["fmax_sync_mhz"] >= config.clock_mhz, report["fmax"]
    assert report["timing_met"]


def test_icebreaker_counts_in_a_counter_ram():
    """The iCEBreaker system keeps the counters in a CounterRAM (the engine exports its events,
    the host link reads one counter at a time); the other boards keep the engine's registers."""
    ice = BoardTop(get_board("icebreaker"), load_config("icebreaker"), engine="real")
    assert ice.system.ram_counters
    assert "counter_events" in ice.system.engine.signature.members
    assert "ctr_sel" in ice.system.hostlink.signature.members
    other = BoardTop(get_board("ulx3s"), load_config("ulx3s"), engine="real")
    assert not other.system.ram_counters
    assert "counters" in other.system.hostlink.signature.members
    assert "counter_events" not in other.system.engine.signature.members
    del ice, other
    collect_quietly()   # built only to inspect


def test_checksum_mem_is_a_board_option():
    """Every board's host link has CHECKSUM_MEM (the iCEBreaker too: it fits, see the bitstream test);
    a BoardSpec or SystemTop may leave it out, and INFO then says so."""
    ice = BoardTop(get_board("icebreaker"), load_config("icebreaker"), engine="standin")
    assert ice.spec.checksum and ice.system.hostlink.checksum
    spec = dataclasses.replace(get_board("icebreaker"), checksum=False)
    bare = BoardTop(spec, load_config("icebreaker"), engine="standin")
    assert not bare.system.hostlink.checksum
    assert not SystemTop(load_config("small"), link="stream", checksum=False).hostlink.checksum
    del ice, bare
    collect_quietly()   # built only to inspect


@pytest.mark.bitstream
def test_icebreaker_bitstream_fits_and_meets_timing(tmp_path):
    """The iCEBreaker's own config fits the UP5K (logic cells, block RAM, the 8 DSPs, the SPRAMs for
    its external memory), places, routes and meets its clock: an area or timing regression in any
    unit fails here."""
    config = load_config(get_board("icebreaker").config)
    report = build("icebreaker", None, tmp_path, engine="real")
    assert report["tag"] == config.tag
    util = report["utilization"]
    assert all(u["used"] <= u["available"] for u in util.values()), util
    assert util["ICESTORM_SPRAM"]["used"] == 4 and util["ICESTORM_DSP"]["used"] <= 8
    assert (tmp_path / "icebreaker-icebreaker" / "top.bin").stat().st_size > 50_000
    assert report["fmax_sync_mhz"] is not None and report["fmax_sync_mhz"] >= config.clock_mhz, report["fmax"]
    assert report["timing_met"]
    print(f"\nicebreaker: {util['ICESTORM_LC']['used']} of {util['ICESTORM_LC']['available']} logic cells, "
          f"{util['ICESTORM_RAM']['used']} block RAMs, Fmax {report['fmax_sync_mhz']:.2f} MHz "
          f"(target {config.clock_mhz:g}), {report['build_seconds']:.0f} s")


def test_program_rebuilds_a_bitstream_of_another_config(tmp_path, monkeypatch):
    """``make program`` loads the board's bitstream, building it when it is missing or was built for
    a config whose tag differs from the config's now; a loader failure names the board."""
    import boards.build as bb

    builds = []
    monkeypatch.setattr(bb, "build", lambda board, cfg, out, **kw: builds.append((board, cfg.tag)))
    monkeypatch.setenv("OPENFPGALOADER", "true")
    cfg = load_config("ulx3s")
    out_dir = tmp_path / "ulx3s-ulx3s"
    bb.program("ulx3s", out=tmp_path)                    # no bitstream: built first
    assert builds == [("ulx3s", cfg.tag)]
    out_dir.mkdir()
    (out_dir / "top.bit").write_bytes(b"\xff")
    (out_dir / "report.json").write_text(json.dumps({"tag": "4x4_some_other_config"}))
    bb.program("ulx3s", out=tmp_path)                    # stale: built again
    assert len(builds) == 2
    (out_dir / "report.json").write_text(json.dumps({"tag": cfg.tag}))
    bb.program("ulx3s", out=tmp_path)                    # current: loaded as is
    assert len(builds) == 2
    monkeypatch.setenv("OPENFPGALOADER", "false")
    with pytest.raises(BuildError, match="board ulx3s: .* failed .* connected"):
        bb.program("ulx3s", out=tmp_path)
