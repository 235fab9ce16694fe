"""LambdaConcept ECPIX-5 85F (ECP5-5G LFE5UM5G-85F, 100 MHz, FTDI USB serial).

The board's memory is DDR3, for which sqzhw has no controller yet: the external memory is block
RAM (128 KiB), enough for small networks but not SqueezeNet's 1.2 MB of weights. Engine from
``configs/ecpix5.toml``; RGB LED 0 green/blue/red = busy/done/error."""

from amaranth_boards.ecpix5 import ECPIX585Platform

from .common import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    loader_args=("-b", "ecpix5"),
    name="ecpix5", platform=ECPIX585Platform, config="ecpix5", family="ecp5", memory="bram",
    bram_bytes=128 << 10,
    leds={"busy": ("rgb_led", 0, "g"), "done": ("rgb_led", 0, "b"), "error": ("rgb_led", 0, "r")},
    uart=("uart", 0),
    notes="external memory is 128 KiB of block RAM (no DDR3 controller yet): SqueezeNet does not fit")
