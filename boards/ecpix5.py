"""LambdaConcept ECPIX-5 85F (ECP5-5G LFE5UM5G-85F, 100 MHz, FT2232H USB serial and JTAG).

External memory is the board's DDR3 (MT41K256M16, 512 MiB, 16 bits): :class:`~rtl_gen.ddr3.DDR3Controller`
on :class:`~rtl_gen.ecp5_ddr3.ECP5DDR3PHY`, DRAM clock twice the engine clock (120 MHz at the config's
60 MHz). ``python -m boards.build --board ecpix5 --memory bram`` builds the block-RAM fallback
(128 KiB, no calibration needed, too small for SqueezeNet's weights). Engine from
``configs/ecpix5.toml``; RGB LED 0 green/blue/red = busy/done/error (error also when the DDR3 read
calibration found no window). Host link at 6 Mbaud (the FT2232H's 12 MHz / 2; 10 cycles per bit at
60 MHz): LambdaConcept's ECPIX-5 documentation names the FT2232H and rates up to 12 Mbaud."""

from amaranth_boards.ecpix5 import ECPIX585Platform

from rtl_gen.ddr3 import MT41K256M16, DDR3Timing
from rtl_gen.uart import FT2232H

from .common import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    loader_args=("-b", "ecpix5"),
    name="ecpix5", platform=ECPIX585Platform, config="ecpix5", family="ecp5", memory="ddr3",
    ddr3_geometry=MT41K256M16, ddr3_timing=DDR3Timing(t_rfc=260.0),   # 4 Gb
    bram_bytes=128 << 10,
    leds={"busy": ("rgb_led", 0, "g"), "done": ("rgb_led", 0, "b"), "error": ("rgb_led", 0, "r")},
    uart=("uart", 0), bridge=FT2232H,
    notes="external memory is the DDR3 (MT41K256M16, 512 MiB) at 2x the engine clock, below DDR3's "
          "300 MHz DLL-on minimum as other ECP5 DDR3 designs run it; not yet tried on hardware "
          "(`--memory bram`: 128 KiB of block RAM instead)")
