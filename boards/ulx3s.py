"""ULX3S 85F (ECP5 LFE5U-85F, 25 MHz oscillator, FT231X USB serial, 32 MiB 16-bit SDR SDRAM): the
default board. Engine from ``configs/ulx3s.toml``; memory is the SDRAM behind
:class:`rtl_gen.sdram.SDRAMController`; LEDs 0/1/2 = busy/done/error. Host link at 2 Mbaud, the
FT231X's fastest exact rate that 50 MHz divides exactly (25 cycles per bit; its 3 Mbaud would be
16.67 cycles, 1.96 % off)."""

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from rtl_gen.uart import FT231X

from .common import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    loader_args=("-b", "ulx3s"),
    name="ulx3s", platform=ULX3S_85F_Platform, config="ulx3s", family="ecp5", memory="sdram",
    leds={"busy": ("led", 0), "done": ("led", 1), "error": ("led", 2)}, uart=("uart", 0), bridge=FT231X,
    # The ulx3s config meets 50 MHz on every seed measured: seed 1 56.65 MHz, seed 2 58.97 MHz,
    # seed 3 62.52 MHz (all routed in router2; limit: ACC block RAM -> STORE queue block RAM).
    # Before the array's per-row weight load enables and the MAXPOOL/checker registers, seed 1
    # did not route or gave 47.15 MHz and only seed 2 (54.99 MHz) met it. Seed 3: most margin.
    seeds={"ulx3s": 3, "ulx3s_bypass": 2},
    notes="SDRAM IS42S16160 (32 MiB) at the engine clock, CAS latency 2, burst length 1; "
          "openFPGALoader -b ulx3s")
