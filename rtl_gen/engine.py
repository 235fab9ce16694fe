"""The engine's top level: controller, DMA, compute unit, buffers and counters in one component.

``Engine(config)`` has exactly the ports of ``docs/architecture.md`` ("Engine top level") and is
exported as the Verilog module ``sqzhw_engine`` by :mod:`rtl_gen.export`::

    start, insn_addr, insn_count, mem_bytes, wr_lo, wr_hi          (inputs)
    busy, done, error, error_pc, counters                           (status)
    rd_cmd (word address) -> rd_data (in order), wr (addr + data)   (external memory)

Inside::

    rd_cmd/rd_data <-> ReadArbiter <-> Fetch (Controller) / LoadUnit -> ACT, WGT, PARAM
    Controller --cmd--> LoadUnit, ComputeUnit, StoreUnit;  ComputeUnit <-> ACT, WGT, PARAM, ACC, OUT
    StoreUnit <- OUT, ACC, PARAM (via Requantizer) --wr--> external memory

Counters (:class:`sqzhw.isa.Counter`): ``CYCLES`` while busy; ``*_BUSY`` the units' busy;
``ARRAY_ACTIVE`` from the compute unit; ``DISPATCH_STALL`` a checked instruction waiting for its unit
or its wait flags; ``MEM_READ_STALL`` a read request not taken or a read in flight without data;
``MEM_WRITE_STALL`` ``wr`` valid and not ready; ``INSNS`` every dispatched instruction, NOP and END
included (the controller's retired count, which is also its pc).
"""

from amaranth.hdl import Cat, Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sqzhw import isa
from sqzhw.config import AccelConfig

from .buffers import Buffers
from .control import Controller
from .counters import N_COUNTERS, Counters, counters_layout
from .dma import LoadUnit, ReadArbiter, StoreUnit, write_layout

__all__ = ["Engine"]


class Engine(wiring.Component):
    """The sqzhw engine for one :class:`~sqzhw.config.AccelConfig`.

    Parameters
    ----------
    config : AccelConfig
    compute : wiring.Component, optional
        The compute unit; default :class:`rtl_gen.compute.ComputeUnit` ``(config)``. Tests may pass
        a stand-in with the same members (``cmd``, ``busy``, ``array_active``, buffer ports).
    counters : bool
        Keep the counters here (default). ``False`` (a board system that keeps them in a
        :class:`~rtl_gen.counters.CounterRAM`): ``counters`` carries only ``INSNS``, and two more
        outputs, ``counter_events`` (``N_COUNTERS``, ``INSNS`` = a retired instruction) and
        ``counter_clear`` (1), feed the outside ones.

    Members
    -------
    See ``docs/architecture.md``, "Engine top level".
    """

    def __init__(self, config: AccelConfig, compute: wiring.Component | None = None, *, counters: bool = True):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"Engine takes an AccelConfig, not {config!r}")
        self.config = config
        if compute is None:
            from .compute import ComputeUnit
            compute = ComputeUnit(config)
        self.compute = compute
        self.own_counters = counters
        outside = {} if counters else {"counter_events": Out(N_COUNTERS), "counter_clear": Out(1)}
        super().__init__({**outside,
            "start": In(1),
            "insn_addr": In(32),
            "insn_count": In(32),
            "mem_bytes": In(32),
            "wr_lo": In(32),
            "wr_hi": In(32),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(isa.ErrorCode),
            "error_pc": Out(32),
            "counters": Out(counters_layout()),
            "rd_cmd": Out(stream.Signature(32)),
            "rd_data": In(stream.Signature(config.ext_data_bits)),
            "wr": Out(stream.Signature(write_layout(config))),
        })

    def _mem_limit(self):
        """``mem_bytes`` clamped to ``2**ext_addr_bits`` (:func:`sqzhw.isa.mem_limit`): the DMA's
        address arithmetic has ``ext_addr_bits`` bits, so nothing past that is addressable."""
        A = self.config.ext_addr_bits
        return self.mem_bytes if A >= 32 else Mux(self.mem_bytes[A:] != 0, 1 << A, self.mem_bytes)

    def elaborate(self, platform):
        m = Module()
        # A compute unit with a `fault` output gets the controller's per-unit pc tracking.
        unit_faults = "fault" in self.compute.signature.members
        m.submodules.ctrl = ctrl = Controller(self.config, unit_faults=unit_faults)
        m.submodules.arbiter = arb = ReadArbiter(self.config)
        m.submodules.load = load = LoadUnit(self.config)
        m.submodules.store = store = StoreUnit(self.config)
        m.submodules.compute = compute = self.compute
        m.submodules.buffers = bufs = Buffers(self.config)
        # INSNS is the controller's retired count (its pc), not a second register.
        if self.own_counters:
            m.submodules.counters = counters = Counters(external=(isa.Counter.INSNS,))

        m.d.comb += [
            ctrl.start.eq(self.start), ctrl.insn_addr.eq(self.insn_addr),
            ctrl.insn_count.eq(self.insn_count), ctrl.mem_bytes.eq(self._mem_limit()),
            ctrl.wr_lo.eq(self.wr_lo), ctrl.wr_hi.eq(self.wr_hi),
            self.busy.eq(ctrl.busy), self.done.eq(ctrl.done), self.error.eq(ctrl.error),
            self.error_pc.eq(ctrl.error_pc),
        ]
        wiring.connect(m, wiring.flipped(self.rd_cmd), arb.rd_cmd)
        wiring.connect(m, wiring.flipped(self.rd_data), arb.rd_data)
        wiring.connect(m, wiring.flipped(self.wr), store.wr)
        wiring.connect(m, ctrl.rd_cmd, arb.fetch_cmd)
        wiring.connect(m, arb.fetch_data, ctrl.rd_data)
        wiring.connect(m, load.rd_cmd, arb.load_cmd)
        wiring.connect(m, arb.load_data, load.rd_data)

        wiring.connect(m, ctrl.load_cmd, load.cmd)
        wiring.connect(m, ctrl.compute_cmd, compute.cmd)
        wiring.connect(m, ctrl.store_cmd, store.cmd)
        m.d.comb += [ctrl.load_busy.eq(load.busy), ctrl.compute_busy.eq(compute.busy),
                     ctrl.store_busy.eq(store.busy)]
        if unit_faults:   # optional: a compute unit that checks ADD params
            m.d.comb += ctrl.compute_fault.eq(compute.fault)

        for name in ("act_w", "wgt_w", "param_w"):
            wiring.connect(m, getattr(bufs, name), getattr(load, name))
        for name in ("out_rs", "acc_rs", "param_rs"):
            wiring.connect(m, getattr(bufs, name), getattr(store, name))
        for name in ("act_r", "wgt_r", "param_r", "acc_r", "acc_w", "out_w"):
            wiring.connect(m, getattr(bufs, name), getattr(compute, name))

        C = isa.Counter
        events = [0] * len(C)
        events[C.CYCLES.value] = ctrl.busy
        events[C.LOAD_BUSY.value] = load.busy
        events[C.COMPUTE_BUSY.value] = compute.busy
        events[C.STORE_BUSY.value] = store.busy
        events[C.ARRAY_ACTIVE.value] = compute.array_active
        events[C.DISPATCH_STALL.value] = ctrl.dispatch_stall
        events[C.MEM_READ_STALL.value] = arb.stall
        events[C.MEM_WRITE_STALL.value] = store.write_stall
        events[C.INSNS.value] = ctrl.retired     # the retired count's increments (outside counters)
        if self.own_counters:
            m.d.comb += [counters.clear.eq(ctrl.clear), counters.events.eq(Cat(*events)),
                         self.counters.eq(counters.counters)]
        else:
            m.d.comb += [self.counter_clear.eq(ctrl.clear), self.counter_events.eq(Cat(*events))]
        m.d.comb += self.counters[C.INSNS.value].eq(ctrl.retired_count)
        return m

