"""OrangeCrab r0.2 85F (ECP5 LFE5U-85F, 48 MHz, DDR3, USB wired to the FPGA).

It has no USB serial chip: the host link's UART is on Feather header pins 0 (RX) and 1 (TX), for a
3.3 V USB-serial adapter, at 1 Mbaud (a rate the common adapters make). External memory is 128 KiB
of block RAM by default: the board's DDR3
(MT41K64M16, 128 MiB, 16 bits: :class:`~rtl_gen.ddr3.DDR3Controller` on
:class:`~rtl_gen.ecp5_ddr3.ECP5DDR3PHY`, DRAM clock twice the engine clock) builds with
``python -m boards.build --board orangecrab --memory ddr3``: with placement seed 1 router2 stayed at
40-50 overused wires and did not finish, with ``--seed 2`` it routed at 59.9 MHz against the 60 MHz
target (the DDR3 pins sit on both sides of the device; ECLK crosses through an ECLKBRIDGECS). The DDR3 pins are this module's own resource (amaranth-boards' has wrong
BA/DQS/DM pins). Engine from ``configs/orangecrab.toml``; RGB LED green/blue/red = busy/done/error
(error also when the DDR3 read calibration found no window)."""

from amaranth.build import Attrs, DiffPairs, Pins, PinsN, Resource, Subsignal
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_85FPlatform
from amaranth_boards.resources import UARTResource

from rtl_gen.ddr3 import MT41K64M16, DDR3Timing
from rtl_gen.uart import SERIAL_ADAPTER

from .common import BoardSpec

__all__ = ["SPEC"]


def _extra_resources(platform):
    return [UARTResource(0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),
            _DDR3]


# amaranth-boards' "ddr3" resource for the r0.2 has BA on P5 N3 M3 (P5 is not a CSFBGA285 ball, M3
# is the green LED), the two DQS pairs split across lanes (G18/B15, H17/A16) and DM swapped. These
# are the r0.2 board's DDR3 pins (the board designer's published pinout): BA on D6 B7 A6, DQS pairs
# B15/A16 (lane 0) and G18/H17 (lane 1), DM D16 (lane 0) and G16.
_DDR3 = Resource(
    "ddr3_r0_2", 0,
    Subsignal("rst", PinsN("L18", dir="o")),
    Subsignal("clk", DiffPairs("J18", "K18", dir="o"), Attrs(IO_TYPE="SSTL135D_I")),
    Subsignal("clk_en", Pins("D18", dir="o")),
    Subsignal("cs", PinsN("A12", dir="o")),
    Subsignal("we", PinsN("B12", dir="o")),
    Subsignal("ras", PinsN("C12", dir="o")),
    Subsignal("cas", PinsN("D13", dir="o")),
    Subsignal("a", Pins("C4 D2 D3 A3 A4 D4 C3 B2 B1 D1 A7 C2 B6 C1 A2 C7", dir="o")),
    Subsignal("ba", Pins("D6 B7 A6", dir="o")),
    Subsignal("dqs", DiffPairs("B15 G18", "A16 H17", dir="io"),
              Attrs(IO_TYPE="SSTL135D_I", TERMINATION="OFF", DIFFRESISTOR="100")),
    Subsignal("dq", Pins("C17 D15 B17 C16 A15 B13 A17 A13 F17 F16 G15 F15 J16 C18 H16 F18", dir="io"),
              Attrs(TERMINATION="75")),
    Subsignal("dm", Pins("D16 G16", dir="o")),
    Subsignal("odt", Pins("C13", dir="o")),
    Attrs(IO_TYPE="SSTL135_I", SLEWRATE="FAST"))


SPEC = BoardSpec(
    loader_args=("-b", "orangeCrab"),
    name="orangecrab", platform=OrangeCrabR0_2_85FPlatform, config="orangecrab", family="ecp5",
    memory="bram", ddr3_resource="ddr3_r0_2", ddr3_geometry=MT41K64M16,
    ddr3_timing=DDR3Timing(t_rfc=110.0),   # 1 Gb
    ddr3_eclk_bridge=True,   # DQ lane 1 and CK on the right side of the device, the rest on the left
    bram_bytes=128 << 10,
    leds={"busy": ("rgb_led", 0, "g"), "done": ("rgb_led", 0, "b"), "error": ("rgb_led", 0, "r")},
    uart=("uart", 0), bridge=SERIAL_ADAPTER, extra_resources=_extra_resources,
    # amaranth-boards' OrangeCrab build appends the DFU suffix its bootloader expects.
    host_tools={"dfu-suffix": "apt-get install dfu-util"},
    notes="UART on Feather pins 0 (RX) / 1 (TX) with an external USB-serial adapter; external memory "
          "is 128 KiB of block RAM (SqueezeNet does not fit); `--memory ddr3` (MT41K64M16, 128 MiB, "
          "at 2x the engine clock) routed with --seed 2 only, at 59.9 MHz against 60")
