"""iCEBreaker (iCE40 UP5K: 8 DSPs, 15 KiB block RAM, 128 KiB SPRAM; 12 MHz; FTDI USB serial).

Engine from ``configs/icebreaker.toml`` (2x2, one-lane STORE requantizer, no ADD unit: the area
knobs of :class:`~sqzhw.config.AccelConfig`) at 25 MHz from the SB_PLL40_PAD; the external memory is
64 KiB of SPRAM (yosys ``-spram``), synthesised with ``-dsp``. LEDs: green = busy, red = error."""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from .common import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    loader_args=("-b", "ice40_generic"),
    name="icebreaker", platform=ICEBreakerPlatform, config="icebreaker", family="ice40", memory="bram",
    bram_bytes=64 << 10, leds={"busy": ("led_g", 0), "error": ("led_r", 0)}, uart=("uart", 0),
    synth_opts="-dsp -spram",
    notes="external memory is 64 KiB (SPRAM): small networks only")
