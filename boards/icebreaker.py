"""iCEBreaker (iCE40 UP5K: 8 DSPs, 15 KiB block RAM, 128 KiB SPRAM; 12 MHz; FTDI USB serial).

Engine from ``configs/icebreaker.toml`` (2x2, one-lane STORE requantizer, no ADD unit: the area
knobs of :class:`~sqzhw.config.AccelConfig`) at 25 MHz from the SB_PLL40_PAD; the external memory is
the four SB_SPRAM256KA blocks, 128 KiB of 16-bit words (:class:`~boards.common.SPRAMMemory`, no
block RAM), directly behind the memory arbiter (no command slice: at 25 MHz the path is short
enough), synthesised with ``-dsp``; the performance counters are a
:class:`~rtl_gen.counters.CounterRAM` (high bits in a block RAM). LEDs: green = busy, red = error.

Area: ``python -m boards.area --board icebreaker`` gives the per-module breakdown against the
5,280 logic cells and 30 block RAMs of the UP5K."""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from .common import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    loader_args=("-b", "ice40_generic"),
    name="icebreaker", platform=ICEBreakerPlatform, config="icebreaker", family="ice40", memory="spram",
    bram_bytes=128 << 10, leds={"busy": ("led_g", 0), "error": ("led_r", 0)}, uart=("uart", 0),
    synth_opts="-dsp", mem_slice=False, ram_counters=True,
    notes="external memory is 128 KiB (the four SPRAMs): small networks only")
