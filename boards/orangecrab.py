"""OrangeCrab r0.2 85F (ECP5 LFE5U-85F, 48 MHz, DDR3, USB wired to the FPGA).

It has no USB serial chip: the host link's UART is on Feather header pins 0 (RX) and 1 (TX), for a
3.3 V USB-serial adapter. No DDR3 controller yet: external memory is 128 KiB of block RAM. Engine
from ``configs/orangecrab.toml``; RGB LED green/blue/red = busy/done/error."""

from amaranth.build import Attrs
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_85FPlatform
from amaranth_boards.resources import UARTResource

from .common import BoardSpec

__all__ = ["SPEC"]


def _uart_on_header(platform):
    return [UARTResource(0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP"))]


SPEC = BoardSpec(
    loader_args=("-b", "orangeCrab"),
    name="orangecrab", platform=OrangeCrabR0_2_85FPlatform, config="orangecrab", family="ecp5",
    memory="bram", bram_bytes=128 << 10,
    leds={"busy": ("rgb_led", 0, "g"), "done": ("rgb_led", 0, "b"), "error": ("rgb_led", 0, "r")},
    uart=("uart", 0), extra_resources=_uart_on_header,
    # amaranth-boards' OrangeCrab build appends the DFU suffix its bootloader expects.
    host_tools={"dfu-suffix": "apt-get install dfu-util"},
    notes="UART on Feather pins 0 (RX) / 1 (TX) with an external USB-serial adapter; external memory "
          "is 128 KiB of block RAM (no DDR3 controller yet)")
