"""iCEBreaker (iCE40 UP5K: 8 DSPs, 15 KiB block RAM, 128 KiB SPRAM; 12 MHz; FTDI USB serial).

Engine from ``configs/icebreaker.toml`` (2x2, one-lane STORE requantizer, no ADD unit: the area
knobs of :class:`~sqzhw.config.AccelConfig`) at 25 MHz from the SB_PLL40_PAD; the external memory is
64 KiB of SPRAM (yosys ``-spram``), synthesised with ``-dsp``. LEDs: green = busy, red = error.

Does not fit yet (measured with the YoWASP toolchain): 11,400 of the 5,280 logic cells and 156 of the
30 block RAMs (the memory's separate read and write ports keep yosys from mapping it to SPRAM), with
the 8 DSPs exactly used. ``make bitstream BOARD=icebreaker`` stops with those figures. Per module
(yosys, hierarchy kept): compute ~2.0k LUT4, host link ~1.4k, checker ~0.9k, buffers ~0.8k, STORE
unit and its requantizer ~1.3k, fetch ~0.6k, counters ~0.3k."""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from .common import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    loader_args=("-b", "ice40_generic"),
    name="icebreaker", platform=ICEBreakerPlatform, config="icebreaker", family="ice40", memory="bram",
    bram_bytes=64 << 10, leds={"busy": ("led_g", 0), "error": ("led_r", 0)}, uart=("uart", 0),
    synth_opts="-dsp -spram",
    notes="external memory is 64 KiB (SPRAM): small networks only; does not fit the UP5K yet "
          "(11.4k of 5.3k logic cells)")
