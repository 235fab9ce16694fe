"""Digilent Arty A7-35 (Artix-7 xc7a35ti, 100 MHz, FT2232H USB serial and JTAG, DDR3L).

External memory is the board's DDR3L (MT41K128M16JT-125, 256 MiB, 16 bits, 1.35 V):
:class:`~rtl_gen.ddr3.DDR3Controller` on :class:`~rtl_gen.xc7_ddr3.XC7DDR3PHY`, DRAM clock twice the
engine clock (200 MHz at the config's 100 MHz). ``python -m boards.build --board arty --memory bram``
builds the block-RAM fallback (128 KiB, no calibration needed, too small for SqueezeNet's weights).
Needs Vivado (not from PyPI): without it the build stops after writing the build tree. Engine from
``configs/arty.toml``; LEDs LD4/LD5/LD6 = busy/done/error (error also when the DDR3 read
calibration found no window). Host link at 4 Mbaud, the FT2232H's fastest exact rate that 100 MHz
divides exactly (25 cycles per bit)."""

from amaranth_boards.arty_a7 import ArtyA7_35Platform

from rtl_gen.ddr3 import MT41K128M16, DDR3Timing
from rtl_gen.uart import FT2232H

from .common import BoardSpec

__all__ = ["SPEC"]

#: The DDR3 pins are all in bank 34, which has no VREF pins on the Arty: the SSTL135 inputs (DQ)
#: take their 0.675 V reference (half of 1.35 V) from inside the bank.
DDR3_XDC = "set_property INTERNAL_VREF 0.675 [get_iobanks 34]\n"

SPEC = BoardSpec(
    loader_args=("-b", "arty"),
    name="arty", platform=ArtyA7_35Platform, config="arty", family="xilinx", memory="ddr3",
    ddr3_geometry=MT41K128M16, ddr3_timing=DDR3Timing(t_rfc=160.0),   # 2 Gb
    ddr3_constraints=DDR3_XDC,
    bram_bytes=128 << 10, leds={"busy": ("led", 0), "done": ("led", 1), "error": ("led", 2)},
    uart=("uart", 0), bridge=FT2232H,
    notes="Vivado required; external memory is the DDR3L (MT41K128M16, 256 MiB) at 2x the engine clock, "
          "below DDR3's 300 MHz DLL-on minimum as the ECP5 DDR3 boards run it; not yet tried on hardware "
          "(`--memory bram`: 128 KiB of block RAM instead)")
