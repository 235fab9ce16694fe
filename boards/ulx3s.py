"""ULX3S 85F (ECP5 LFE5U-85F, 25 MHz oscillator, FTDI USB serial, 32 MiB 16-bit SDR SDRAM): the
default board. Engine from ``configs/ulx3s.toml``; memory is the SDRAM behind
:class:`rtl_gen.sdram.SDRAMController`; LEDs 0/1/2 = busy/done/error."""

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from .common import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    loader_args=("-b", "ulx3s"),
    name="ulx3s", platform=ULX3S_85F_Platform, config="ulx3s", family="ecp5", memory="sdram",
    leds={"busy": ("led", 0), "done": ("led", 1), "error": ("led", 2)}, uart=("uart", 0),
    # The ulx3s config with placement seed 1 did not converge in router2 (about 30 overused wires
    # after 220 iterations); seed 2 routed at 54.99 MHz in 260 s, seed 3 placed at 49.1 MHz.
    seeds={"ulx3s": 2},
    notes="SDRAM IS42S16160 (32 MiB) at the engine clock, CAS latency 2, burst length 1; "
          "openFPGALoader -b ulx3s")
