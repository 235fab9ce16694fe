"""Digilent Arty A7-35 (Artix-7 xc7a35ti, 100 MHz, FTDI USB serial, DDR3).

Needs Vivado (not from PyPI): without it the build stops after writing the build tree. No DDR3
controller yet: external memory is 128 KiB of block RAM. Engine from ``configs/arty.toml``; LEDs
LD4/LD5/LD6 = busy/done/error."""

from amaranth_boards.arty_a7 import ArtyA7_35Platform

from .common import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    loader_args=("-b", "arty"),
    name="arty", platform=ArtyA7_35Platform, config="arty", family="xilinx", memory="bram",
    bram_bytes=128 << 10, leds={"busy": ("led", 0), "done": ("led", 1), "error": ("led", 2)},
    uart=("uart", 0),
    notes="Vivado required; external memory is 128 KiB of block RAM (no DDR3 controller yet)")
