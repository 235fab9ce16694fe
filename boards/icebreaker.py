"""iCEBreaker (iCE40 UP5K: 8 DSPs, 15 KiB block RAM, 128 KiB SPRAM; 12 MHz; FT2232H USB serial).

Engine from ``configs/icebreaker.toml`` (2x2, one-lane STORE requantizer, no ADD unit: the area
knobs of :class:`~sqzhw.config.AccelConfig`) at 18 MHz from the SB_PLL40_PAD (12 MHz x 48 / 32,
exact; the host link's 2 Mbaud, the FT2232H's 12 MHz / 6, is exactly 9 cycles per bit, where its
6 Mbaud would be 3); the external memory is the four SB_SPRAM256KA blocks, 128 KiB of 16-bit
words (:class:`~boards.common.SPRAMMemory`, no block RAM), behind the
memory arbiter and a command slice, synthesised with ``-dsp``; the performance counters are a
:class:`~rtl_gen.counters.CounterRAM` (high bits in a block RAM). LEDs: green = busy, red = error.

Measured with the YoWASP toolchain: 4,697 of the 5,280 logic cells, 28 of 30 block RAMs, 8 of 8
DSPs, 4 of 4 SPRAMs; Fmax 22.5 MHz against the 18 MHz target; 90-170 s. At 25 MHz it reached
21.6 MHz: the critical path is the memory request handshake, combinational from the controller
through the fetch, the engine's read arbiter and the board arbiter. ``python -m boards.area --board
icebreaker`` gives the per-module breakdown."""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from rtl_gen.uart import FT2232H

from .common import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    loader_args=("-b", "ice40_generic"),
    name="icebreaker", platform=ICEBreakerPlatform, config="icebreaker", family="ice40", memory="spram",
    bram_bytes=128 << 10, leds={"busy": ("led_g", 0), "error": ("led_r", 0)}, uart=("uart", 0),
    bridge=FT2232H,
    synth_opts="-dsp", mem_slice=True, ram_counters=True,
    notes="external memory is 128 KiB (the four SPRAMs): small networks only")
