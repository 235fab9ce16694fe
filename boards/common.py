"""What every board top has in common: the engine, the host link, one memory, status LEDs.

:class:`SystemTop` is the whole system without pins or clocks: engine + host link (UART or, in
simulation, a byte-stream port) + an arbiter of their memory ports onto one memory, which is

* ``"sdram"``: :class:`~rtl_gen.sdram.SDRAMController` with its pins as the ``sdram`` port (boards);
* ``"sdram-model"``: the controller wired to :class:`~rtl_gen.sdram_model.SDRAMModel` (simulation;
  converts to Verilog, so Verilator runs the full system with the SDRAM at its real width and timing);
* ``"ddr3"``: :class:`~rtl_gen.ddr3.DDR3Controller` with its PHY interface as the ``ddr3`` port (the
  ECPIX-5 and OrangeCrab: :class:`BoardTop` puts :class:`~rtl_gen.ecp5_ddr3.ECP5DDR3PHY` on it, the
  Arty A7 :class:`~rtl_gen.xc7_ddr3.XC7DDR3PHY`);
* ``"ddr3-model"``: the DDR3 controller wired to :class:`~rtl_gen.ddr3_model.DDR3Model` (PHY + DRAM,
  simulation);
* ``"bram"``: :class:`BlockRAMMemory` (fast simulation, boards without external memory, and the
  DDR3 boards' fallback that needs no calibration: ``python -m boards.build --memory bram``);
* ``"spram"``: :class:`SPRAMMemory`, the iCE40 UP's single-port SB_SPRAM256KA blocks (iCEBreaker; a
  behavioural model of the same ports elsewhere, so the same system simulates).

:class:`BoardTop` puts a :class:`SystemTop` on an amaranth-boards platform: the PLL for the engine
clock (:func:`ecp5_pll`, :func:`ice40_pll`, :func:`xilinx_mmcm`), a reset held until the PLL locks,
the UART and the LEDs. Board modules (``boards/ulx3s.py`` ...) only describe their choices in a
:class:`BoardSpec`.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Callable

from amaranth.hdl import (Cat, ClockDomain, ClockSignal, Const, Instance, Module, Mux, ResetInserter, ResetSignal,
                          Signal)
from amaranth.lib import data, fifo, io, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_gen.counters import CounterRAM
from rtl_gen.ddr3 import MT41K256M16, DDR3Controller, DDR3Geometry, DDR3Timing
from rtl_gen.ddr3_model import DDR3Model
from rtl_gen.ddr3_model import Violation as DDR3Violation
from rtl_gen.ddr3_phy_if import DDR3PHYParams, DDR3PHYSignature
from rtl_gen.ecp5_ddr3 import ECP5DDR3PHY, phy_params as ecp5_ddr3_params
from rtl_gen.xc7_ddr3 import IDELAY_REF_MHZ, XC7DDR3PHY, phy_params as xc7_ddr3_params
from rtl_gen.sdram import IS42S16160, SDRAMController, SDRAMGeometry, SDRAMSignature, SDRAMTiming
from rtl_gen.sdram_model import SDRAMModel, Violation
from rtl_gen.skid import SkidBuffer
from rtl_gen.uart import SERIAL_ADAPTER, SerialBridge, divisor_for, fastest_exact_baud
from sqzhw import isa, protocol
from sqzhw.config import AccelConfig

__all__ = ["MemArbiter", "MemCommandSlice", "BlockRAMMemory", "SPRAMMemory", "EngineStandIn", "SystemTop", "BoardSpec", "BoardTop", "system_verilog",
           "BoardError", "ecp5_pll", "ecp5_pll_instance", "ice40_pll", "xilinx_mmcm", "xilinx_ddr3_mmcm", "make_engine",
           "make_hostlink", "family_ddr3_params", "host_link_baud"]


class BoardError(ValueError):
    """A board/config combination that cannot be built (names the board and the reason)."""


def _mem_signature(data_bits: int) -> dict:
    """The engine's memory port members, master side."""
    return {
        "rd_cmd": Out(stream.Signature(32)),
        "rd_data": In(stream.Signature(data_bits)),
        "wr": Out(stream.Signature(data.StructLayout({"addr": 32, "data": data_bits}))),
    }


class MemArbiter(wiring.Component):
    """``n`` memory masters (engine-style ``rd_cmd``/``rd_data``/``wr``) onto one memory.

    The grant stays with a master while it has a request; an idle grant moves to the next master
    with one (round robin). Every handshake is forwarded in the cycle it happens, so each master
    keeps its own order (a read after a write sees it); read data return in order and go back to the
    master whose request they answer (a tag FIFO, ``max_reads`` deep, bounds reads in flight).
    Only the low ``addr_bits`` of the word addresses are forwarded (the rest are driven 0): the
    memory behind it has no more, and the masters never address past it.

    Members
    -------
    masters : In(...).array(n)
        Slave side for each master (``masters[i].rd_cmd`` is an input stream).
    mem : Out(...)
        Master side towards the memory.
    """

    def __init__(self, n: int, data_bits: int, *, max_reads: int = 16, addr_bits: int = 32):
        if n < 1:
            raise ValueError(f"MemArbiter: n = {n!r}: at least one master")
        if not 1 <= addr_bits <= 32:
            raise ValueError(f"MemArbiter: addr_bits = {addr_bits!r}: 1..32")
        self.n, self.data_bits, self.max_reads, self.addr_bits = n, data_bits, max_reads, addr_bits
        sig = wiring.Signature(_mem_signature(data_bits))
        super().__init__({"masters": In(sig).array(n), "mem": Out(sig)})

    def elaborate(self, platform):
        m = Module()
        n = self.n
        tags = m.submodules.tags = fifo.SyncFIFO(width=max(1, (n - 1).bit_length()), depth=self.max_reads)
        grant = Signal(range(n))
        active = [Signal(name=f"active{i}") for i in range(n)]
        for i, port in enumerate(self.masters):
            m.d.comb += active[i].eq(port.rd_cmd.valid | port.wr.valid)
        # This cycle's choice: the holder if it still has a request, else the next one that has.
        sel = Signal(range(n))
        m.d.comb += sel.eq(grant)
        with m.If(~self._pick(active, grant)):
            # Nearest master after the holder wins: assigned last (Amaranth: the last one counts).
            for k in range(n - 1, 0, -1):
                for g in range(n):
                    cand = (g + k) % n
                    with m.If((grant == g) & active[cand]):
                        m.d.comb += sel.eq(cand)
        m.d.sync += grant.eq(sel)

        mem = self.mem
        ab = self.addr_bits
        for i, port in enumerate(self.masters):
            with m.If(sel == i):
                m.d.comb += [
                    mem.rd_cmd.valid.eq(port.rd_cmd.valid & tags.w_rdy),
                    mem.rd_cmd.payload[:ab].eq(port.rd_cmd.payload[:ab]),
                    port.rd_cmd.ready.eq(mem.rd_cmd.ready & tags.w_rdy),
                    mem.wr.valid.eq(port.wr.valid), mem.wr.payload.addr[:ab].eq(port.wr.payload.addr[:ab]),
                    mem.wr.payload.data.eq(port.wr.payload.data),
                    port.wr.ready.eq(mem.wr.ready),
                ]
            m.d.comb += port.rd_data.payload.eq(mem.rd_data.payload)
            with m.If(tags.r_rdy & (tags.r_data == i)):
                m.d.comb += [port.rd_data.valid.eq(mem.rd_data.valid), mem.rd_data.ready.eq(port.rd_data.ready)]
        m.d.comb += [tags.w_en.eq(mem.rd_cmd.valid & mem.rd_cmd.ready), tags.w_data.eq(sel),
                     tags.r_en.eq(mem.rd_data.valid & mem.rd_data.ready)]
        return m

    @staticmethod
    def _pick(active, index):
        out = active[0]
        for i in range(1, len(active)):
            out = Mux(index == i, active[i], out)
        return out


class MemCommandSlice(wiring.Component):
    """A register slice on a memory port's commands: reads and writes in one ordered queue.

    Between the arbiter and the memory controller the ``rd_cmd``/``wr`` handshakes would otherwise
    be one combinational path from the engine's units through the arbiter into the controller's
    state machine (the longest path of the board builds). Reads and writes share one
    :class:`~rtl_gen.skid.SkidBuffer`, so the memory sees them in the order the arbiter accepted
    them: a read after a write still sees it, as the memory port contract requires. One command
    per cycle enters (a write first when both are offered), so a full-speed stream keeps one word
    per cycle. ``rd_data`` passes straight through (the controller already buffers it).

    Members
    -------
    up : In(memory port)      the arbiter's ``mem`` side connects here
    down : Out(memory port)   towards the memory controller
    """

    def __init__(self, data_bits: int):
        self.data_bits = data_bits
        sig = wiring.Signature(_mem_signature(data_bits))
        self._cmd = data.StructLayout({"write": 1, "addr": 32, "data": data_bits})
        super().__init__({"up": In(sig), "down": Out(sig)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.skid = skid = SkidBuffer(self._cmd)
        up, down = self.up, self.down
        write = up.wr.valid
        m.d.comb += [
            skid.i.valid.eq(up.wr.valid | up.rd_cmd.valid),
            skid.i.payload.write.eq(write),
            skid.i.payload.addr.eq(Mux(write, up.wr.payload.addr, up.rd_cmd.payload)),
            skid.i.payload.data.eq(up.wr.payload.data),
            up.wr.ready.eq(skid.i.ready),
            up.rd_cmd.ready.eq(skid.i.ready & ~write),
            down.wr.valid.eq(skid.o.valid & skid.o.payload.write),
            down.wr.payload.addr.eq(skid.o.payload.addr),
            down.wr.payload.data.eq(skid.o.payload.data),
            down.rd_cmd.valid.eq(skid.o.valid & ~skid.o.payload.write),
            down.rd_cmd.payload.eq(skid.o.payload.addr),
            skid.o.ready.eq(Mux(skid.o.payload.write, down.wr.ready, down.rd_cmd.ready)),
        ]
        m.d.comb += [up.rd_data.valid.eq(down.rd_data.valid), up.rd_data.payload.eq(down.rd_data.payload),
                     down.rd_data.ready.eq(up.rd_data.ready)]
        return m


class BlockRAMMemory(wiring.Component):
    """On-chip memory with the engine's word interface (one read per cycle, in order).

    Members
    -------
    rd_cmd, rd_data, wr : slave side of the engine's memory ports
    """

    def __init__(self, data_bits: int, words: int, init: list[int] | None = None):
        if words < 1 or words & (words - 1):
            raise ValueError(f"BlockRAMMemory: words = {words!r}: a power of two")
        self.data_bits, self.words = data_bits, words
        self.storage = Memory(shape=data_bits, depth=words, init=init or [])
        super().__init__(wiring.Signature(_mem_signature(data_bits)).flip())

    def elaborate(self, platform):
        m = Module()
        m.submodules.storage = self.storage
        wp = self.storage.write_port()
        rp = self.storage.read_port(transparent_for=(wp,))
        abits = self.words.bit_length() - 1
        m.d.comb += [self.wr.ready.eq(1), wp.en.eq(self.wr.valid),
                     wp.addr.eq(self.wr.payload.addr[:abits]), wp.data.eq(self.wr.payload.data)]
        out_valid = Signal()
        take = self.rd_cmd.valid & (~out_valid | self.rd_data.ready)
        m.d.comb += [self.rd_cmd.ready.eq(~out_valid | self.rd_data.ready), rp.addr.eq(self.rd_cmd.payload[:abits]),
                     rp.en.eq(take), self.rd_data.valid.eq(out_valid), self.rd_data.payload.eq(rp.data)]
        with m.If(take):
            m.d.sync += out_valid.eq(1)
        with m.Elif(self.rd_data.ready):
            m.d.sync += out_valid.eq(0)
        return m


class SPRAMMemory(wiring.Component):
    """External memory in the iCE40 UP's single-port RAMs (SB_SPRAM256KA, 16K x 16 bits each),
    with the engine's word interface (one read per cycle, in order).

    Each block does a read or a write per cycle, never both: a write offered together with a read
    goes first (``rd_cmd.ready`` is low that cycle) and the read, taken the next cycle, returns the
    written word, as :class:`BlockRAMMemory`'s write-transparent read port does. The read word
    stays on the blocks' outputs until ``rd_data`` takes it, so no command is taken while it waits
    (a write would overwrite the block's output): ``wr.ready`` and ``rd_cmd.ready`` are low while
    ``rd_data`` is valid and not ready. The engine and the host link take their read data without
    waiting (it is never held against a write).

    On an iCE40 UP platform (``primitive=None``: its ``device`` starts with ``iCE40UP``) the blocks
    are ``SB_SPRAM256KA`` instances; elsewhere (simulation, other devices) a behavioural
    :class:`~amaranth.lib.memory.Memory` with the same ports and timing stands in.

    Parameters
    ----------
    words : int
        16384, 32768, 49152 or 65536 (one to four blocks; the word address's top bits pick one).
    primitive : bool or None
        Force the SB_SPRAM256KA instances (True) or the model (False); None decides by platform.

    Members
    -------
    rd_cmd, rd_data, wr : slave side of the engine's memory ports (16-bit words)
    """

    BLOCK_WORDS = 1 << 14

    def __init__(self, words: int = 4 << 14, *, primitive: bool | None = None):
        if words < 1 or words % self.BLOCK_WORDS or words > 4 * self.BLOCK_WORDS:
            self._MustUse__silence = True  # not built: no 'created but never used' warning
            raise ValueError(f"SPRAMMemory: words = {words!r}: 1 to 4 blocks of {self.BLOCK_WORDS}")
        self.data_bits, self.words, self.primitive = 16, words, primitive
        self.blocks = words // self.BLOCK_WORDS
        super().__init__(wiring.Signature(_mem_signature(16)).flip())

    def elaborate(self, platform):
        m = Module()
        primitive = self.primitive
        if primitive is None:
            primitive = str(getattr(platform, "device", "")).startswith("iCE40UP")
        ab = (self.words - 1).bit_length()
        write = self.wr.valid
        out_valid = Signal()            # a read word waits on rd_data
        free = ~out_valid | self.rd_data.ready
        take = self.rd_cmd.valid & ~write & free
        addr = Mux(write, self.wr.payload.addr[:ab], self.rd_cmd.payload[:ab])
        bank = addr[14:ab] if self.blocks > 1 else Const(0, 1)
        bank_q = Signal.like(bank)      # the block whose output is the read word
        m.d.comb += [self.wr.ready.eq(free), self.rd_cmd.ready.eq(~write & free)]
        outs = []
        for b in range(self.blocks):
            sel = (bank == b) if self.blocks > 1 else Const(1)
            dout = Signal(16, name=f"dout{b}")
            outs.append(dout)
            if primitive:
                m.submodules[f"spram{b}"] = Instance(
                    "SB_SPRAM256KA", i_ADDRESS=addr[:14], i_DATAIN=self.wr.payload.data, i_MASKWREN=0b1111,
                    i_WREN=write, i_CHIPSELECT=((write & free) | take) & sel, i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=dout)
            else:
                mem = Memory(shape=16, depth=self.BLOCK_WORDS, init=[])
                m.submodules[f"spram{b}"] = mem
                wp, rp = mem.write_port(), mem.read_port()
                m.d.comb += [wp.addr.eq(addr[:14]), wp.data.eq(self.wr.payload.data), wp.en.eq(write & free & sel),
                             rp.addr.eq(addr[:14]), rp.en.eq(take & sel), dout.eq(rp.data)]
        word = Signal(16)
        m.d.comb += word.eq(outs[0])
        for b in range(1, self.blocks):
            with m.If(bank_q == b):
                m.d.comb += word.eq(outs[b])
        m.d.comb += [self.rd_data.valid.eq(out_valid), self.rd_data.payload.eq(word)]
        with m.If(take):
            m.d.sync += [out_valid.eq(1), bank_q.eq(bank)]
        with m.Elif(self.rd_data.ready):
            m.d.sync += out_valid.eq(0)
        return m


class EngineStandIn(wiring.Component):
    """Stand-in with the engine's ports, for board builds while :mod:`rtl_gen.engine` cannot be
    built: on ``start`` it reads the ``insn_count`` instruction words and writes their XOR to
    ``wr_lo``, then reports ``done`` (so the memory path and LEDs are exercised). Reports name it.
    """

    def __init__(self, config: AccelConfig):
        self.config = config
        d = config.ext_data_bits
        super().__init__({
            "start": In(1), "insn_addr": In(32), "insn_count": In(32), "mem_bytes": In(32),
            "wr_lo": In(32), "wr_hi": In(32), "busy": Out(1), "done": Out(1), "error": Out(isa.ErrorCode),
            "error_pc": Out(32), "counters": Out(data.ArrayLayout(32, len(isa.Counter))),
            **_mem_signature(d),
        })

    def elaborate(self, platform):
        m = Module()
        eb = self.config.ext_bytes
        words = isa.INSN_BYTES // eb
        addr, left, got, acc = Signal(32), Signal(32), Signal(32), Signal(self.config.ext_data_bits)
        m.d.comb += [self.rd_data.ready.eq(1), self.rd_cmd.payload.eq(addr)]
        with m.If(self.busy):
            m.d.sync += self.counters[isa.Counter.CYCLES.value].eq(self.counters[isa.Counter.CYCLES.value] + 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [addr.eq(self.insn_addr // eb), left.eq(self.insn_count * words),
                                 got.eq(self.insn_count * words), acc.eq(0), self.done.eq(0),
                                 self.counters[isa.Counter.CYCLES.value].eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [self.busy.eq(1), self.rd_cmd.valid.eq(left != 0)]
                with m.If(self.rd_cmd.valid & self.rd_cmd.ready):
                    m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
                with m.If(self.rd_data.valid):
                    m.d.sync += [acc.eq(acc ^ self.rd_data.payload), got.eq(got - 1)]
                with m.If(got == 0):
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [self.busy.eq(1), self.wr.valid.eq(1), self.wr.payload.addr.eq(self.wr_lo // eb),
                             self.wr.payload.data.eq(acc)]
                with m.If(self.wr.ready):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"
        return m


def make_engine(config: AccelConfig, engine: str = "auto", *, counters: bool = True) -> wiring.Component:
    """``Engine(config)`` (``engine="real"``), :class:`EngineStandIn` (``"standin"``), or the real one
    when it can be built and the stand-in with a warning otherwise (``"auto"``). ``counters=False``:
    the real engine without its counter registers (``Engine(config, counters=False)``)."""
    if engine not in ("auto", "real", "standin"):
        raise ValueError(f"engine = {engine!r}: 'auto', 'real' or 'standin'")
    if engine == "standin":
        return EngineStandIn(config)
    try:
        from rtl_gen.engine import Engine
        return Engine(config, counters=counters)
    except Exception as exc:  # the engine is another engineer's work in progress
        if engine == "real":
            raise
        warnings.warn(f"rtl_gen.engine.Engine({config.name}) is not available ({exc!r}); "
                      f"building with EngineStandIn", stacklevel=2)
        return EngineStandIn(config)


def make_hostlink(config: AccelConfig, mem_bytes: int, clk_hz: float, uart_divisor: int, *,
                  counter_port: bool = False, checksum: bool = True):
    """``rtl_gen.hostlink.HostLink`` for ``config``, given whichever of ``mem_bytes``, ``clk_hz``,
    ``divisor``, ``counter_port``, ``checksum`` its constructor takes (the INFO reply carries
    ``config.tag`` and ``mem_bytes``)."""
    from rtl_gen.hostlink import HostLink
    params = inspect.signature(HostLink).parameters
    offered = {"clk_hz": clk_hz, "divisor": uart_divisor, "uart_divisor": uart_divisor}
    if counter_port:
        offered["counter_port"] = True
    if not checksum:
        offered["checksum"] = False
    return HostLink(config, mem_bytes, **{k: v for k, v in offered.items() if k in params})


class SystemTop(wiring.Component):
    """Engine + host link + memory, without pins: what the board tops and the full-system
    simulation share.

    Parameters
    ----------
    config : AccelConfig
    memory : ``"sdram"``, ``"sdram-model"``, ``"ddr3"``, ``"ddr3-model"``, ``"bram"`` or ``"spram"``
    clk_hz : float
        Frequency of ``sync`` (default ``config.clock_mhz``): SDRAM timing and the UART divisor.
    uart_divisor : int or None
        Clock cycles per UART bit (default: :data:`sqzhw.protocol.DEFAULT_BAUD` at ``clk_hz``). ``None`` with
        ``link="stream"``: no UART at all.
    link : ``"uart"`` or ``"stream"``
        ``"uart"``: ``uart_rx``/``uart_tx`` pins; ``"stream"``: ``host_rx``/``host_tx`` byte streams
        into the host link (fast full-system simulation, the UART is tested on its own).
    mem_words : int or None
        Words of memory for ``"bram"`` / ``"sdram-model"`` / ``"ddr3-model"`` / ``"spram"`` (default:
        64 KiB / 256 KiB / 256 KiB / four blocks, 128 KiB); ``"ddr3"``: the whole chip, capped at
        4 GiB (the host link's 32-bit byte addresses).
    mem_slice : bool
        A :class:`MemCommandSlice` between the arbiter and the memory (default; the arbiter's tag
        FIFO is then ``min(16, max(4, config.max_reads))`` deep). Without it the tag FIFO is 2 deep,
        all that a one-cycle on-chip memory has in flight (about 100 iCE40 logic cells less, a longer
        combinational path from the engine into the memory).
    sdram_geometry, sdram_timing : for the SDRAM memories (default: the ULX3S part)
    sdram_read_delay : int or None
        The controller's ``read_delay`` (boards add their I/O registers).
    ddr3_geometry, ddr3_timing, ddr3_phy_params : for the DDR3 memories (default: the ECPIX-5
        part, MT41K*-107 timing, the ECP5 PHY's parameters :func:`rtl_gen.ecp5_ddr3.phy_params`, so
        the model has the board's latencies)
    engine : ``"auto"``, ``"real"`` or ``"standin"`` (see :func:`make_engine`)
    hostlink : callable or None
        Factory ``(config, mem_bytes, clk_hz, uart_divisor) -> component`` (default
        :func:`make_hostlink`).
    ram_counters : bool
        Keep the performance counters in a :class:`~rtl_gen.counters.CounterRAM` beside the engine
        (high bits in a block RAM, read one at a time by the host link) instead of the engine's
        registers: the same exact counts on the wire, ~300 iCE40 logic cells fewer.
    checksum : bool
        The host link's ``CHECKSUM_MEM`` (verified, incremental program loads; ~170 iCE40 logic
        cells); without it ``INFO`` says so and the driver loads without checks.

    Members
    -------
    uart_rx : In(1), uart_tx : Out(1)           with ``link="uart"``
    host_rx : In(stream 8), host_tx : Out(stream 8)   with ``link="stream"``
    sdram : Out(SDRAMSignature)                 with ``memory="sdram"``
    ddr3 : Out(DDR3PHYSignature)                with ``memory="ddr3"``: to the board's PHY
    mem_init_done, mem_calib_error : Out(1)     with the DDR3 memories: the controller's init and
                                                read calibration finished / found no window on
                                                some lane (the memory then never answers: an LED)
    busy, done, error : Out(1)                  the engine's status (LEDs)
    mem_violation : Out(Violation)              with ``memory="sdram-model"``: the model's first
                                                timing violation (must stay NONE); with
                                                ``"ddr3-model"`` the DDR3 model's (its own enum)
    """

    def __init__(self, config: AccelConfig, memory: str = "bram", *, clk_hz: float | None = None,
                 uart_divisor: int | None = None, link: str = "uart", mem_words: int | None = None,
                 sdram_geometry: SDRAMGeometry = IS42S16160, sdram_timing: SDRAMTiming = SDRAMTiming(),
                 sdram_read_delay: int | None = None, ddr3_geometry: DDR3Geometry = MT41K256M16,
                 ddr3_timing: DDR3Timing = DDR3Timing(), ddr3_phy_params: DDR3PHYParams | None = None,
                 engine: str = "auto",
                 hostlink: Callable | None = None, mem_slice: bool = True, ram_counters: bool = False,
                 checksum: bool = True):
        if memory not in ("sdram", "sdram-model", "ddr3", "ddr3-model", "bram", "spram"):
            raise BoardError(f"SystemTop: memory = {memory!r}: 'sdram', 'sdram-model', 'ddr3', 'ddr3-model', "
                             f"'bram' or 'spram'")
        if memory == "spram" and config.ext_data_bits != 16:
            raise BoardError(f"SystemTop: config {config.name!r} has ext_data_bits = {config.ext_data_bits}, "
                             f"the SPRAM is 16 bits wide")
        if link not in ("uart", "stream"):
            raise BoardError(f"SystemTop: link = {link!r}: 'uart' or 'stream'")
        if memory.startswith("sdram") and config.ext_data_bits != sdram_geometry.data_bits:
            raise BoardError(f"SystemTop: config {config.name!r} has ext_data_bits = {config.ext_data_bits}, "
                             f"the SDRAM is {sdram_geometry.data_bits} bits wide")
        if memory.startswith("ddr3") and config.ext_data_bits != ddr3_geometry.data_bits:
            raise BoardError(f"SystemTop: config {config.name!r} has ext_data_bits = {config.ext_data_bits}, "
                             f"a DDR3 word (one burst-chop-4 burst of {ddr3_geometry.dq_bits}-bit DQ) is "
                             f"{ddr3_geometry.data_bits} bits")
        self.config, self.memory, self.link = config, memory, link
        self.clk_hz = clk_hz or config.clock_mhz * 1e6
        self.uart_divisor = uart_divisor or round(self.clk_hz / protocol.DEFAULT_BAUD)
        self.sdram_geometry, self.sdram_timing = sdram_geometry, sdram_timing
        self.sdram_read_delay = sdram_read_delay
        self.ddr3_geometry, self.ddr3_timing = ddr3_geometry, ddr3_timing
        self.ddr3_phy_params = ddr3_phy_params or ecp5_ddr3_params()
        self.mem_slice = mem_slice
        self.ram_counters = ram_counters
        if memory == "sdram":
            self.mem_words = sdram_geometry.words
        elif memory == "ddr3":
            # The host link addresses bytes with 32 bits: a bigger chip is used up to 4 GiB.
            self.mem_words = min(ddr3_geometry.words, (1 << 32) // config.ext_bytes)
        elif memory == "spram":
            self.mem_words = mem_words or 4 * SPRAMMemory.BLOCK_WORDS
        else:
            default = (256 << 10 if memory in ("sdram-model", "ddr3-model") else 64 << 10) // config.ext_bytes
            self.mem_words = mem_words or default
        # The DDR3 controller's read calibration owns the top words: the host and engine see the rest.
        reserved = DDR3Controller.CALIB_WORDS if memory.startswith("ddr3") else 0
        self.mem_bytes = (self.mem_words - reserved) * config.ext_bytes
        self.engine = make_engine(config, engine, counters=not ram_counters)
        # A custom factory is only asked for the counter port (or to leave CHECKSUM_MEM out) when
        # there is one to give it.
        extra = {"counter_port": True} if ram_counters else {}
        if not checksum:
            extra["checksum"] = False
        self.hostlink = (hostlink or make_hostlink)(config, self.mem_bytes, self.clk_hz, self.uart_divisor, **extra)
        members = {"busy": Out(1), "done": Out(1), "error": Out(1)}
        if link == "uart":
            members.update({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1)})
        else:
            members.update({"host_rx": In(stream.Signature(8)), "host_tx": Out(stream.Signature(8))})
        if memory == "sdram":
            members["sdram"] = Out(SDRAMSignature(sdram_geometry))
        if memory == "sdram-model":
            members["mem_violation"] = Out(Violation)
        if memory == "ddr3":
            g = ddr3_geometry
            members["ddr3"] = Out(DDR3PHYSignature(dq_bits=g.dq_bits, bank_bits=g.bank_bits,
                                                   addr_pins=g.addr_pins, params=self.ddr3_phy_params))
        if memory == "ddr3-model":
            members["mem_violation"] = Out(DDR3Violation)
        if memory.startswith("ddr3"):
            members.update({"mem_init_done": Out(1), "mem_calib_error": Out(1)})
        super().__init__(members)

    @property
    def engine_name(self) -> str:
        return type(self.engine).__name__

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.hostlink = link = self.hostlink
        # The host link may reset the engine (its RESET command) through an `engine_reset` output.
        engine = self.engine
        if "engine_reset" in link.signature.members:
            engine = ResetInserter(link.engine_reset)(engine)
        m.submodules.engine = engine
        eng = self.engine

        # Engine control from the host link, status back: every member of the engine's signature
        # that the host link has under the same name, in the opposite direction.
        mem_ports = ("rd_cmd", "rd_data", "wr")
        for name, member in eng.signature.members.items():
            if name in mem_ports:
                continue
            if name in link.signature.members:
                if member.flow == In:
                    m.d.comb += getattr(eng, name).eq(getattr(link, name))
                else:
                    m.d.comb += getattr(link, name).eq(getattr(eng, name))
            elif name == "mem_bytes":
                m.d.comb += eng.mem_bytes.eq(self.mem_bytes)
        error = eng.error != isa.ErrorCode.NONE
        m.d.comb += [self.busy.eq(eng.busy), self.done.eq(eng.done)]
        if self.ram_counters:
            # The counters beside the engine (reset with it); a stand-in engine's own counters are
            # read through the same port as external ones.
            outside = "counter_events" in eng.signature.members
            ctrs = CounterRAM(external=() if outside else tuple(isa.Counter))
            m.submodules.counters = (ResetInserter(link.engine_reset)(ctrs)
                                     if "engine_reset" in link.signature.members else ctrs)
            m.d.comb += [ctrs.ext.eq(eng.counters), ctrs.sel.eq(link.ctr_sel),
                         link.ctr_value.eq(ctrs.value), link.ctr_valid.eq(ctrs.valid)]
            if outside:
                m.d.comb += [ctrs.events.eq(eng.counter_events), ctrs.clear.eq(eng.counter_clear)]

        # Byte link.
        rx_name, tx_name = "rx", "tx"
        if self.link == "uart":
            from rtl_gen.uart import UARTRx, UARTTx
            m.submodules.uart_rx = urx = UARTRx(self.uart_divisor)
            m.submodules.uart_tx = utx = UARTTx(self.uart_divisor)
            m.d.comb += [urx.rx.eq(self.uart_rx), self.uart_tx.eq(utx.tx)]
            wiring.connect(m, urx.o, getattr(link, rx_name))
            wiring.connect(m, getattr(link, tx_name), utx.i)
        else:
            wiring.connect(m, wiring.flipped(self.host_rx), getattr(link, rx_name))
            wiring.connect(m, getattr(link, tx_name), wiring.flipped(self.host_tx))

        # Memory: host link (master 0) and engine (master 1) onto one memory.
        addr_bits = max(1, (self.mem_words - 1).bit_length())
        m.submodules.arbiter = arb = MemArbiter(2, cfg.ext_data_bits, max_reads=min(16, max(4, cfg.max_reads)) if self.mem_slice else 2,
                                                addr_bits=addr_bits)
        for i, master in enumerate((link, eng)):
            for port in mem_ports:
                wiring.connect(m, getattr(master, port), getattr(arb.masters[i], port))
        if self.memory == "bram":
            m.submodules.memory = mem = BlockRAMMemory(cfg.ext_data_bits, self.mem_words)
        elif self.memory == "spram":
            m.submodules.memory = mem = SPRAMMemory(self.mem_words)
        elif self.memory.startswith("ddr3"):
            m.submodules.memory = mem = DDR3Controller(
                self.ddr3_geometry, self.ddr3_timing, self.clk_hz / 1e6, self.ddr3_phy_params,
                calib_word=self.mem_words - DDR3Controller.CALIB_WORDS)
            m.d.comb += [self.mem_init_done.eq(mem.init_done), self.mem_calib_error.eq(mem.calib_error)]
            # A failed read calibration leaves the memory unusable: the error LED says so.
            error = error | mem.calib_error
            if self.memory == "ddr3":
                wiring.connect(m, mem.phy, wiring.flipped(self.ddr3))
            else:
                m.submodules.ddr3_model = model = DDR3Model(self.ddr3_geometry, self.ddr3_timing,
                                                            self.clk_hz / 1e6, self.ddr3_phy_params,
                                                            words=self.mem_words)
                wiring.connect(m, mem.phy, model.phy)
                m.d.comb += self.mem_violation.eq(model.violation)
        else:
            m.submodules.memory = mem = SDRAMController(self.sdram_geometry, self.sdram_timing,
                                                        self.clk_hz / 1e6, read_delay=self.sdram_read_delay)
            if self.memory == "sdram":
                wiring.connect(m, mem.sdram, wiring.flipped(self.sdram))
            else:
                m.submodules.sdram_model = model = SDRAMModel(self.sdram_geometry, self.sdram_timing,
                                                              self.clk_hz / 1e6, words=self.mem_words)
                wiring.connect(m, mem.sdram, model.sdram)
                m.d.comb += self.mem_violation.eq(model.violation)
        m.d.comb += self.error.eq(error)
        # The host's STATUS reports the memory's start-up (the driver waits for it, or names a failure).
        if "mem_starting" in link.signature.members and hasattr(mem, "init_done"):
            failed = mem.calib_error if hasattr(mem, "calib_error") else Const(0)
            m.d.comb += [link.mem_starting.eq(~mem.init_done & ~failed), link.mem_failed.eq(failed)]
        # A register slice between the arbiter and the memory cuts the engine-to-controller path.
        upstream = arb.mem
        if self.mem_slice:
            m.submodules.mem_slice = mem_slice = MemCommandSlice(cfg.ext_data_bits)
            wiring.connect(m, arb.mem, mem_slice.up)
            upstream = mem_slice.down
        for port in mem_ports:
            wiring.connect(m, getattr(upstream, port), getattr(mem, port))
        return m


# -- clocks --------------------------------------------------------------------------------------

def ecp5_pll(fin_mhz: float, fout_mhz: float) -> tuple[float, dict]:
    """EHXPLLL dividers for ``fout_mhz`` from ``fin_mhz`` (feedback from CLKOP, as ``ecppll``):
    ``fout = fin / CLKI_DIV * CLKFB_DIV``, VCO ``fout * CLKOP_DIV`` in 400..800 MHz, PFD 3.125..400 MHz.
    Returns ``(achieved MHz, {CLKI_DIV, CLKFB_DIV, CLKOP_DIV})``."""
    best = None
    for ref in range(1, 129):
        pfd = fin_mhz / ref
        if not 3.125 <= pfd <= 400:
            continue
        for fb in range(1, 81):
            fout = pfd * fb
            for op in range(1, 129):
                if 400 <= fout * op <= 800:
                    err = abs(fout - fout_mhz)
                    if best is None or err < best[0] - 1e-9:
                        best = (err, fout, {"CLKI_DIV": ref, "CLKFB_DIV": fb, "CLKOP_DIV": op})
                    break
    if best is None or best[0] > 0.02 * fout_mhz:
        raise BoardError(f"ECP5 PLL: no divider setting reaches {fout_mhz} MHz from {fin_mhz} MHz")
    return best[1], best[2]


def ecp5_pll_instance(fin_mhz: float, fout_mhz: float, params: dict, clki, clkop, locked) -> Instance:
    """An ``EHXPLLL`` with the dividers of :func:`ecp5_pll` (``params``), ``clki`` in, ``clkop`` out
    (also its feedback, as ``ecppll``) and ``locked``."""
    p = params
    return Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{fin_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{fout_mhz:.4f}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
        p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
        p_CLKOP_CPHASE=p["CLKOP_DIV"] // 2, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
        p_CLKFB_DIV=p["CLKFB_DIV"],
        i_RST=0, i_STDBY=0, i_CLKI=clki, i_CLKFB=clkop, i_PHASESEL0=0,
        i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0,
        i_ENCLKOP=0, o_CLKOP=clkop, o_LOCK=locked)


def ice40_pll(fin_mhz: float, fout_mhz: float) -> tuple[float, dict]:
    """SB_PLL40 dividers (``icepll`` rules): ``fout = fin * (DIVF+1) / ((DIVR+1) * 2**DIVQ)``,
    PFD 10..133 MHz, VCO 533..1066 MHz."""
    best = None
    for divr in range(16):
        pfd = fin_mhz / (divr + 1)
        if not 10 <= pfd <= 133:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533 <= vco <= 1066:
                continue
            for divq in range(1, 7):
                fout = vco / (1 << divq)
                err = abs(fout - fout_mhz)
                if best is None or err < best[0] - 1e-9:
                    filt = next(r for f, r in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5), (1e9, 6)) if pfd < f)
                    best = (err, fout, {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filt})
    if best is None or best[0] > 0.02 * fout_mhz:
        raise BoardError(f"iCE40 PLL: no divider setting reaches {fout_mhz} MHz from {fin_mhz} MHz")
    return best[1], best[2]


def xilinx_mmcm(fin_mhz: float, fout_mhz: float) -> tuple[float, dict]:
    """MMCME2_BASE integer dividers: VCO ``fin * MULT / DIVCLK`` in 600..1200 MHz (7-series -1)."""
    best = None
    for d in range(1, 11):
        for mult in range(2, 65):
            vco = fin_mhz * mult / d
            if not 600 <= vco <= 1200:
                continue
            o = max(1, min(128, round(vco / fout_mhz)))
            err = abs(vco / o - fout_mhz)
            if best is None or err < best[0] - 1e-9:
                best = (err, vco / o, {"DIVCLK_DIVIDE": d, "CLKFBOUT_MULT_F": mult, "CLKOUT0_DIVIDE_F": o})
    if best is None or best[0] > 0.02 * fout_mhz:
        raise BoardError(f"MMCM: no setting reaches {fout_mhz} MHz from {fin_mhz} MHz")
    return best[1], best[2]


def xilinx_ddr3_mmcm(fin_mhz: float, sync_mhz: float, ref_mhz: float = IDELAY_REF_MHZ) -> tuple[float, dict]:
    """MMCME2 dividers for the 7-series DDR3 PHY's clocks: VCO ``fin * MULT / DIVCLK`` in
    600..1200 MHz (-1 speed grade), PFD at least 10 MHz; ``sys2x`` = VCO / ``CLKOUT1_DIVIDE`` (and
    ``CLKOUT2`` the same, shifted 90 degrees), ``sync`` = VCO / ``CLKOUT0_DIVIDE_F`` = half of
    ``sys2x`` exactly (phase aligned, as the serdes need), ``idelay_ref`` = VCO / ``CLKOUT3_DIVIDE``
    within 5 % of ``ref_mhz`` (the ``IDELAYCTRL`` takes 190..210 MHz). Returns ``(sync MHz, dividers)``."""
    if not sync_mhz > 0:
        raise BoardError(f"MMCM: sync_mhz = {sync_mhz!r}: must be positive")
    best = None
    for d in range(1, 11):
        if fin_mhz / d < 10:
            break
        for mult in range(2, 65):
            vco = fin_mhz * mult / d
            if not 600 <= vco <= 1200:
                continue
            d2 = max(1, min(64, round(vco / (2 * sync_mhz))))
            dr = max(1, min(128, round(vco / ref_mhz)))
            ref_err = abs(vco / dr - ref_mhz) / ref_mhz
            if ref_err > 0.05:
                continue
            # closest sync, then closest reference, then the fastest VCO (least jitter)
            err = (round(abs(vco / (2 * d2) - sync_mhz) / sync_mhz, 9), round(ref_err, 9), -vco)
            if best is None or err < best[0]:
                best = (err, vco / (2 * d2), {"DIVCLK_DIVIDE": d, "CLKFBOUT_MULT_F": mult, "CLKOUT0_DIVIDE_F": 2 * d2,
                                             "CLKOUT1_DIVIDE": d2, "CLKOUT2_DIVIDE": d2, "CLKOUT3_DIVIDE": dr})
    if best is None or best[0][0] > 0.02:
        raise BoardError(f"MMCM: no setting reaches sync {sync_mhz} MHz (and {ref_mhz} MHz for the IDELAYCTRL) "
                         f"from {fin_mhz} MHz")
    return best[1], best[2]


#: FPGA families with a DDR3 PHY (:func:`family_ddr3_params`).
DDR3_FAMILIES = ("ecp5", "xilinx")


def family_ddr3_params(family: str) -> DDR3PHYParams:
    """The DDR3 PHY parameters of a board family: the ECP5's or the 7-series' ``phy_params()``."""
    if family not in DDR3_FAMILIES:
        raise BoardError(f"family_ddr3_params: family = {family!r}: a DDR3 PHY exists for {DDR3_FAMILIES}")
    return ecp5_ddr3_params() if family == "ecp5" else xc7_ddr3_params()


# -- boards --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoardSpec:
    """What a board module tells :class:`BoardTop` and :mod:`boards.build`.

    Parameters
    ----------
    name : str
        Board name on the command line (``--board``).
    platform : callable
        amaranth-boards platform class (instantiated per build).
    config : str
        Default config preset.
    family : ``"ecp5"``, ``"ice40"`` or ``"xilinx"``
    memory : ``"sdram"``, ``"ddr3"``, ``"bram"`` or ``"spram"``
    bram_bytes : int
        External memory size when ``memory`` is ``"bram"`` or ``"spram"`` (a DDR3 board's block-RAM
        fallback, ``BoardTop(memory="bram")``, uses it too).
    ddr3_geometry, ddr3_timing : DDR3Geometry, DDR3Timing or None
        The DDR3 part of a ``"ddr3"`` board (:mod:`rtl_gen.ddr3` presets; timing default
        :class:`~rtl_gen.ddr3.DDR3Timing` ``()``).
    ddr3_resource : str
        Name of the DDR3 pins' resource (``"ddr3"``; a board module may add a corrected one). A
        platform's ``ddr3_pseudo_power`` resource (the OrangeCrab's virtual supply pins for the DDR3
        bank) is driven to its inactive level: VCC on its PinsN, ground on its Pins.
    mem_slice : bool
        Register slice between the memory arbiter and the memory (:class:`SystemTop`); needed for
        timing on the ECP5 boards, and it shortens the iCEBreaker's critical path too.
    ram_counters : bool
        Performance counters in a block RAM beside the engine (:class:`SystemTop`).
    checksum : bool
        The host link's ``CHECKSUM_MEM`` (:class:`SystemTop`): ``False`` for a board too full for it.
    leds : dict
        ``{"busy" | "done" | "error": (resource, index[, subsignal])}``; a board may omit some.
    uart : (resource name, index)
    bridge : SerialBridge
        The USB-serial bridge on the other end of the UART (:mod:`rtl_gen.uart`'s ``FT231X``,
        ``FT2232H``; default ``SERIAL_ADAPTER``, an adapter on header pins).
    baud : int or None
        The host-link rate when the board module pins one; ``None``: :func:`host_link_baud` derives
        it from the bridge and the config's clock.
    extra_resources : callable or None
        ``platform -> list[Resource]`` to add before requesting (e.g. a UART on header pins).
    synth_opts : str
        Extra ``synth_*`` options (iCE40: ``-dsp``).
    notes : str
        Limitations shown in the build report.
    host_tools : dict
        ``{program: how to install it}``: system programs the platform's build script runs beyond
        the YoWASP tools (the OrangeCrab's ``dfu-suffix``); a build checks them before it starts.
    """
    name: str
    platform: Callable
    config: str
    family: str
    memory: str = "bram"
    bram_bytes: int = 64 << 10
    ddr3_geometry: DDR3Geometry | None = None
    ddr3_resource: str = "ddr3"   #: platform resource of the DDR3 pins (number 0)
    #: the DDR3 pins span both sides of the device (the OrangeCrab): ECLK goes through an
    #: ECLKBRIDGECS, without which nextpnr cannot route it to the far side's ECLK buffers
    ddr3_eclk_bridge: bool = False
    ddr3_timing: DDR3Timing | None = None
    #: Vivado constraints the DDR3 pins need beyond the resource's attributes (the Arty's bank
    #: INTERNAL_VREF), added as an .xdc file to DDR3 builds
    ddr3_constraints: str = ""
    leds: dict = field(default_factory=lambda: {"busy": ("led", 0), "done": ("led", 1), "error": ("led", 2)})
    uart: tuple = ("uart", 0)
    bridge: SerialBridge = SERIAL_ADAPTER
    baud: int | None = None
    extra_resources: Callable | None = None
    uart_tx_enable: bool = False
    mem_slice: bool = True
    ram_counters: bool = False   #: :class:`SystemTop`'s ``ram_counters`` (the iCEBreaker: area)
    checksum: bool = True        #: :class:`SystemTop`'s ``checksum``
    notes: str = ""
    synth_opts: str = ""
    loader_args: tuple = ()   #: openFPGALoader arguments selecting the board/cable
    #: nextpnr placement seed per config name (others: 1), where another seed closes timing with
    #: more margin than seed 1 (or seed 1 not at all): placement varies Fmax by 10 % or more.
    seeds: dict = field(default_factory=dict)
    host_tools: dict = field(default_factory=dict)


def host_link_baud(spec: BoardSpec, clk_hz: float) -> int:
    """The board's default UART rate at engine clock ``clk_hz``: ``spec.baud`` if the board pins
    one, else the fastest rate its bridge makes exactly that the clock divides exactly with at least
    9 cycles per bit (:func:`rtl_gen.uart.fastest_exact_baud`); :data:`sqzhw.protocol.DEFAULT_BAUD`
    when there is none (``divisor_for`` then judges it as before: within 2 %).

    ULX3S (FT231X) at 50 MHz: 2 Mbaud, 25 cycles (3 Mbaud would be 16.67 cycles, 1.96 % off);
    ECPIX-5 (FT2232H) at 60 MHz: 6 Mbaud, 10 cycles; iCEBreaker (FT2232H) at 18 MHz: 2 Mbaud, 9
    cycles; Arty A7 (FT2232H) at 100 MHz: 4 Mbaud, 25 cycles; OrangeCrab (an adapter): 1 Mbaud.
    """
    if spec.baud is not None:
        return spec.baud
    try:
        return fastest_exact_baud(spec.bridge, clk_hz)
    except ValueError:
        return protocol.DEFAULT_BAUD


class BoardTop(wiring.Component):
    """A :class:`SystemTop` on a board: PLL to ``config.clock_mhz``, reset until lock, UART, LEDs,
    and the SDRAM pins (clock from a DDR output 180 degrees from ``sync``, so commands registered
    on our rising edge are sampled mid-cycle by the chip, and read data registered at our next
    rising edge arrive in the cycle the cycle model delivers them: ``read_delay = CL + 1``).

    Parameters
    ----------
    spec : BoardSpec
    config : AccelConfig
    engine : see :func:`make_engine`
    baud : int or None
        UART rate (default: :func:`host_link_baud`, the board's bridge and the config's clock); the
        engine clock must divide it to within 2 % (a UART receiver samples mid-bit and tolerates
        about that much).
    memory : str or None
        Override ``spec.memory``: ``"bram"`` on a DDR3 board is the fallback that works without
        read calibration (``spec.bram_bytes`` of block RAM), ``"ddr3"`` needs ``spec.ddr3_geometry``.

    A DDR3 board (``memory="ddr3"``) clocks differently. ECP5: the PLL makes twice the engine
    clock, an ``ECLKSYNCB`` (stopped by the PHY's init sequence) gives ``sys2x`` and a ``CLKDIVF``
    divides it by two into ``sync``, so the two are phase aligned as the DDR primitives need; the
    board oscillator is the ``init`` clock of the PHY's start-up sequence. Xilinx 7-series: one MMCM
    makes ``sync``, ``sys2x``, ``sys2x_90`` and the ``IDELAYCTRL``'s 200 MHz reference
    (:func:`xilinx_ddr3_mmcm`); ``BoardSpec.ddr3_constraints`` go into an extra .xdc file.
    """

    def __init__(self, spec: BoardSpec, config: AccelConfig, *, engine: str = "auto",
                 baud: int | None = None, memory: str | None = None):
        memory = memory or spec.memory
        if memory != spec.memory and {memory, spec.memory} != {"ddr3", "bram"}:
            raise BoardError(f"board {spec.name}: memory = {memory!r}: this board has {spec.memory!r} "
                             f"(only a DDR3 board may switch to 'bram' and back)")
        if memory == "ddr3" and (spec.ddr3_geometry is None or spec.family not in DDR3_FAMILIES):
            raise BoardError(f"board {spec.name}: memory = 'ddr3' needs an ECP5 or Xilinx 7-series board with a DDR3 part "
                             f"(BoardSpec.ddr3_geometry)")
        if baud is None:
            baud = host_link_baud(spec, config.clock_mhz * 1e6)
        try:
            divisor = divisor_for(config.clock_mhz * 1e6, baud)
        except ValueError as exc:
            raise BoardError(f"board {spec.name}, config {config.name!r}: {exc}") from None
        self.spec, self.config, self.baud, self.memory = spec, config, baud, memory
        self.pll_mhz: float | None = None
        self.pll_params: dict = {}
        bram_words = spec.bram_bytes // config.ext_bytes
        ddr3 = {}
        if memory == "ddr3":
            ddr3 = {"ddr3_geometry": spec.ddr3_geometry, "ddr3_timing": spec.ddr3_timing or DDR3Timing(),
                    "ddr3_phy_params": family_ddr3_params(spec.family)}
        try:
            self.system = SystemTop(
                config, memory=memory, link="uart",
                mem_words=bram_words if memory in ("bram", "spram") else None,
                uart_divisor=divisor, engine=engine, mem_slice=spec.mem_slice, ram_counters=spec.ram_counters,
                checksum=spec.checksum, **ddr3)
        except BoardError as exc:
            raise BoardError(f"board {spec.name}: {exc}") from None
        super().__init__({})

    def _clock(self, m: Module, platform, phy: ECP5DDR3PHY | XC7DDR3PHY | None = None) -> None:
        if isinstance(phy, XC7DDR3PHY):
            self._xc7_ddr3_clock(m, platform)
            return
        if phy is not None:
            self._ddr3_clock(m, platform, phy)
            return
        spec, target = self.spec, self.config.clock_mhz
        clk_name = platform.default_clk
        fin = platform.default_clk_frequency / 1e6
        m.domains.sync = cd = ClockDomain("sync")
        # Constrain the engine clock itself (nextpnr reports Fmax against it).
        platform.add_clock_constraint(cd.clk, target * 1e6)
        locked = Signal()
        if spec.family == "ecp5":
            clk = io.Buffer("i", platform.request(clk_name, dir="-"))
            m.submodules.clkbuf = clk
            if abs(fin - target) < 1e-6:
                m.d.comb += [ClockSignal("sync").eq(clk.i), locked.eq(1)]
                self.pll_mhz = fin
            else:
                self.pll_mhz, p = ecp5_pll(fin, target)
                self.pll_params = p
                m.submodules.pll = ecp5_pll_instance(fin, self.pll_mhz, p, clk.i, ClockSignal("sync"), locked)
        elif spec.family == "ice40":
            port = platform.request(clk_name, dir="-")
            if abs(fin - target) < 1e-6:
                m.submodules.clkbuf = clk = io.Buffer("i", port)
                m.d.comb += [ClockSignal("sync").eq(clk.i), locked.eq(1)]
                self.pll_mhz = fin
            else:
                self.pll_mhz, p = ice40_pll(fin, target)
                self.pll_params = p
                m.submodules.pll = Instance(
                    "SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE", p_DIVR=p["DIVR"], p_DIVF=p["DIVF"],
                    p_DIVQ=p["DIVQ"], p_FILTER_RANGE=p["FILTER_RANGE"],
                    i_PACKAGEPIN=port.io, i_RESETB=1, i_BYPASS=0,
                    o_PLLOUTGLOBAL=ClockSignal("sync"), o_LOCK=locked)
        else:
            m.submodules.clkbuf = clk = io.Buffer("i", platform.request(clk_name, dir="-"))
            self.pll_mhz, p = xilinx_mmcm(fin, target)
            self.pll_params = p
            fb, out = Signal(name="mmcm_fb"), Signal(name="mmcm_sync")
            m.submodules.mmcm = Instance(
                "MMCME2_BASE", p_CLKIN1_PERIOD=1000 / fin, p_DIVCLK_DIVIDE=p["DIVCLK_DIVIDE"],
                p_CLKFBOUT_MULT_F=float(p["CLKFBOUT_MULT_F"]), p_CLKOUT0_DIVIDE_F=float(p["CLKOUT0_DIVIDE_F"]),
                i_CLKIN1=clk.i, i_CLKFBIN=fb, o_CLKFBOUT=fb, o_CLKOUT0=out, o_LOCKED=locked,
                i_RST=0, i_PWRDWN=0)
            m.submodules.bufg = Instance("BUFG", i_I=out, o_O=ClockSignal("sync"))
        self._reset(m, platform, locked)

    def _ddr3_clock(self, m: Module, platform, phy: ECP5DDR3PHY) -> None:
        """PLL at twice the engine clock -> ``ECLKSYNCB`` (``STOP`` from the PHY) = ``sys2x`` ->
        ``CLKDIVF`` /2 = ``sync``; the oscillator is ``init`` (reset until the PLL locks)."""
        target = self.config.clock_mhz
        fin = platform.default_clk_frequency / 1e6
        m.domains.sync = cd = ClockDomain("sync")
        m.domains.sys2x = cd2x = ClockDomain("sys2x", reset_less=True)
        m.domains.init = ClockDomain("init")
        platform.add_clock_constraint(cd.clk, target * 1e6)
        platform.add_clock_constraint(cd2x.clk, 2 * target * 1e6)
        m.submodules.clkbuf = clk = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        pll_mhz, p = ecp5_pll(fin, 2 * target)
        self.pll_mhz = pll_mhz / 2          # the engine clock (reports match Fmax against it)
        self.pll_params = {**p, "CLKOP_MHZ": round(pll_mhz, 4)}
        locked, clkop = Signal(), Signal()
        # Feedback straight from CLKOP: ECLKSYNCB stops and CLKDIVF divides, the PLL must not see that.
        m.submodules.pll = ecp5_pll_instance(fin, pll_mhz, p, clk.i, clkop, locked)
        eclk_in = clkop
        if self.spec.ddr3_eclk_bridge:
            eclk_in = Signal()
            # CLK1 left open: nextpnr cannot route a constant to an edge-clock input
            m.submodules.eclkbridge = Instance("ECLKBRIDGECS", i_CLK0=clkop, i_SEL=0, o_ECSOUT=eclk_in)
        m.submodules.eclksync = Instance("ECLKSYNCB", i_ECLKI=eclk_in, i_STOP=phy.eclk_stop,
                                         o_ECLKO=ClockSignal("sys2x"))
        m.submodules.clkdiv = Instance("CLKDIVF", p_DIV="2.0", i_CLKI=ClockSignal("sys2x"), i_RST=phy.ddr_reset,
                                       i_ALIGNWD=0, o_CDIVX=ClockSignal("sync"))
        # init: the oscillator, reset (synchronously released) until the PLL locks
        m.d.comb += ClockSignal("init").eq(clk.i)
        init_rst = Signal(2, init=0b11)
        m.domains.init_por = ClockDomain("init_por", reset_less=True)
        m.d.comb += ClockSignal("init_por").eq(clk.i)
        m.d.init_por += init_rst.eq(Cat(~locked, init_rst[0]))
        m.d.comb += ResetSignal("init").eq(init_rst[1])
        # sync also waits for the PHY (SCLK only runs once the init sequence releases CLKDIVF).
        self._reset(m, platform, locked)

    def _xc7_ddr3_clock(self, m: Module, platform) -> None:
        """One MMCM (:func:`xilinx_ddr3_mmcm`) makes ``sync``, ``sys2x`` (twice ``sync``, phase
        aligned: the serdes' ``CLKDIV`` and ``CLK``), ``sys2x_90`` (``sys2x`` a quarter period later:
        ``DQS`` and ``CK``) and the 200 MHz ``idelay_ref``, each on a BUFG; reset until it locks.

        No clock constraint is added: Vivado derives all four from the MMCM and the oscillator's
        constraint, with their phases (a ``create_clock`` on a BUFG output would lose the 90
        degrees between ``sys2x`` and ``sys2x_90``)."""
        fin = platform.default_clk_frequency / 1e6
        self.pll_mhz, p = xilinx_ddr3_mmcm(fin, self.config.clock_mhz)
        self.pll_params = p
        m.domains.sync = ClockDomain("sync")
        m.domains += [ClockDomain(name, reset_less=True) for name in ("sys2x", "sys2x_90", "idelay_ref")]
        m.submodules.clkbuf = clk = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        # Vivado names the MMCM's clocks after these nets (build reports label them by name).
        fb, locked = Signal(name="mmcm_fb"), Signal()
        outs = {0: "sync", 1: "sys2x", 2: "sys2x_90", 3: "idelay_ref"}
        raw = {k: Signal(name=f"mmcm_{name}") for k, name in outs.items()}
        m.submodules.mmcm = Instance(
            "MMCME2_BASE", p_CLKIN1_PERIOD=1000 / fin, p_DIVCLK_DIVIDE=p["DIVCLK_DIVIDE"],
            p_CLKFBOUT_MULT_F=float(p["CLKFBOUT_MULT_F"]), p_CLKOUT0_DIVIDE_F=float(p["CLKOUT0_DIVIDE_F"]),
            p_CLKOUT1_DIVIDE=p["CLKOUT1_DIVIDE"], p_CLKOUT2_DIVIDE=p["CLKOUT2_DIVIDE"],
            p_CLKOUT2_PHASE=90.0, p_CLKOUT3_DIVIDE=p["CLKOUT3_DIVIDE"],
            i_CLKIN1=clk.i, i_CLKFBIN=fb, o_CLKFBOUT=fb, **{f"o_CLKOUT{k}": s for k, s in raw.items()},
            o_LOCKED=locked, i_RST=0, i_PWRDWN=0)
        for k, name in outs.items():
            m.submodules[f"bufg_{name}"] = Instance("BUFG", i_I=raw[k], o_O=ClockSignal(name))
        self._reset(m, platform, locked)

    def _reset(self, m: Module, platform, locked) -> None:
        # Reset: held until the PLL has locked and for 2**8 cycles more (the reset button too).
        button = Const(0)
        if platform.default_rst is not None:
            rst = io.Buffer("i", platform.request(platform.default_rst, dir="-"))
            m.submodules.rstbuf = rst
            button = rst.i
        m.domains.por = ClockDomain("por", reset_less=True)
        m.d.comb += ClockSignal("por").eq(ClockSignal("sync"))
        hold = Signal(9, init=0)
        with m.If(~locked | button):
            m.d.por += hold.eq(0)
        with m.Elif(~hold[-1]):
            m.d.por += hold.eq(hold + 1)
        m.d.comb += ResetSignal("sync").eq(~hold[-1])

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        if platform is None:
            raise BoardError(f"BoardTop({spec.name}) is elaborated with an amaranth-boards platform; "
                             f"use SystemTop for simulation")
        if spec.extra_resources is not None:
            names = {(r.name, r.number) for r in platform.resources.values()}
            platform.add_resources([r for r in spec.extra_resources(platform) if (r.name, r.number) not in names])
        phy = None
        if self.memory == "ddr3":
            g = spec.ddr3_geometry
            phy_cls = XC7DDR3PHY if spec.family == "xilinx" else ECP5DDR3PHY
            phy = phy_cls(platform.request(spec.ddr3_resource, 0, dir="-"), bank_bits=g.bank_bits,
                          addr_pins=g.addr_pins, params=self.system.ddr3_phy_params)
            m.submodules.ddr3_phy = phy
            if spec.ddr3_constraints:
                # read by the Vivado script with the platform's own XDC (every .xdc file is)
                platform.add_file("ddr3.xdc", spec.ddr3_constraints)
            if ("ddr3_pseudo_power", 0) in {(r.name, r.number) for r in platform.resources.values()}:
                power = platform.request("ddr3_pseudo_power", 0, dir="-")
                for name in ("vcc_virtual", "gnd_virtual"):
                    m.submodules[f"ddr3_{name}"] = buf = io.Buffer("o", getattr(power, name))
                    m.d.comb += buf.o.eq(0)
        self._clock(m, platform, phy)
        m.submodules.system = sys_ = self.system
        if phy is not None:
            wiring.connect(m, sys_.ddr3, phy.ctrl)

        uart = platform.request(*spec.uart, dir="-")
        m.submodules.uart_rx_buf = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx = io.Buffer("o", uart.tx)
        m.d.comb += [sys_.uart_rx.eq(rx.i), tx.o.eq(sys_.uart_tx)]
        if spec.uart_tx_enable:
            en = platform.request("uart_tx_enable", 0, dir="-")
            m.submodules.uart_en_buf = enb = io.Buffer("o", en)
            m.d.comb += enb.o.eq(1)

        status = {"busy": sys_.busy, "done": sys_.done, "error": sys_.error}
        requested = {}
        for what, (name, index, *sub) in spec.leds.items():
            if (name, index) not in requested:
                requested[(name, index)] = platform.request(name, index, dir="-")
            pin = requested[(name, index)]
            if sub:
                pin = getattr(pin, sub[0])
            m.submodules[f"led_{what}"] = led = io.Buffer("o", pin)
            m.d.comb += led.o.eq(status[what])

        if self.memory == "sdram":
            self._sdram_pins(m, platform, sys_.sdram)
        return m

    @staticmethod
    def _sdram_pins(m: Module, platform, s) -> None:
        pins = platform.request("sdram", 0, dir="-")
        # Clock: a DDR output driving 0 then 1, i.e. sync inverted (rising edge mid-cycle).
        m.submodules.sdram_clk = ck = io.DDRBuffer("o", pins.clk)
        m.d.comb += [ck.o[0].eq(0), ck.o[1].eq(1)]
        for name, value in (("clk_en", s.cke), ("cs", s.cs), ("we", s.cmd.as_value()[0]),
                            ("cas", s.cmd.as_value()[1]), ("ras", s.cmd.as_value()[2]),
                            ("ba", s.ba), ("a", s.a), ("dqm", s.dqm)):
            buf = io.Buffer("o", getattr(pins, name))
            m.submodules[f"sdram_{name}"] = buf
            m.d.comb += buf.o.eq(value)
        # DQ: output enable and data straight from the controller's registers (with the command);
        # input registered at our rising edge, half a cycle after the chip's: the same read_delay
        # (CL + 1) as the directly wired model.
        m.submodules.sdram_dq = dq = io.Buffer("io", pins.dq)
        dq_in = Signal.like(s.dq_i)
        m.d.sync += dq_in.eq(dq.i)
        m.d.comb += [dq.o.eq(s.dq_o), dq.oe.eq(s.dq_oe), s.dq_i.eq(dq_in)]


def system_verilog(config: AccelConfig, *, name: str = "sqzhw_system", **kwargs) -> str:
    """Verilog of :class:`SystemTop` ``(config, **kwargs)`` (default ``memory="sdram-model"``,
    ``link="stream"``) for Verilator/Icarus: module ``name`` with ports ``clk``, ``rst`` and the
    top's members flattened (``host_rx__valid``, ``uart_rx``, ``mem_violation`` ...)."""
    from amaranth.back import verilog
    kwargs.setdefault("memory", "sdram-model")
    kwargs.setdefault("link", "stream")
    top = SystemTop(config, **kwargs)
    return verilog.convert(top, name=name)
