"""The real SqueezeNet 1.1 at 227x227 on the default config, end to end in Verilator on a real image:
output bit-exact with the golden model, top-1 equal to the float model (issue: "The real network")."""

import numpy as np
import pytest

from sqzhw import isa, runtime
from sqzhw.compiler import frontend, quantize
from sqzhw.compiler.codegen import compile_graph
from sqzhw.compiler.float_ref import run_onnxruntime
from sqzhw.config import load_config
from sqzhw.preprocess import PRESETS

pytestmark = [pytest.mark.slow, pytest.mark.rtl, pytest.mark.models]


def test_real_squeezenet11_default_config_in_verilator(squeezenet11_path, shared_images):
    from sim.runner import run_program

    spec = PRESETS["deepscale-1.1"]
    graph = frontend.import_onnx(squeezenet11_path, input_size=(spec.height, spec.width))
    calib = quantize.calibration_inputs(shared_images, spec, count=16, seed=1234)
    qgraph = quantize.quantize(graph, calib, input_range=quantize.input_range(spec), verbose=False)
    program = compile_graph(qgraph, load_config("default"), spec)

    image = shared_images / "car.png"
    x = runtime.prepare_image(program, image)
    raw = runtime.input_bytes(program, x)
    result = run_program(program, raw, simulator="verilator")
    assert result.done, f"engine stopped with {result.error} at instruction {result.error_pc}"
    sums, logits = runtime.read_output(program, result.memory)

    golden = runtime.run_golden(program, x)
    np.testing.assert_array_equal(sums, golden.sums)
    float_out = run_onnxruntime(squeezenet11_path, x, logits=True)
    float_logits = np.asarray(float_out.get("logits", float_out["output"])).reshape(-1)
    assert int(np.argmax(logits)) == int(np.argmax(float_logits)) == 817  # sports car

    macs = sum(layer.macs for layer in program.layers)
    cycles = result.counters[isa.Counter.CYCLES]
    utilization = macs / (program.config.macs_per_cycle * cycles)
    print(f"SqueezeNet 1.1 227x227 on default in Verilator: {cycles:,} cycles, "
          f"array utilization {utilization:.1%}, {result.wall_seconds:.1f} s wall")
    assert 0 < utilization <= 1
