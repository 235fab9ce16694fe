// Simulation top: the sqzhw engine and the external-memory model (sim/hdl/ext_mem.sv).
//
// cocotb holds reset, sets the control inputs once, pulses `start` and then only waits for
// `finished` (done, an error, or the built-in cycle timeout +TIMEOUT_CYCLES=<n>, 0 = none). The
// memory is loaded by $readmemh at time 0 and dumped by pulsing `dump`; see ext_mem.sv for its
// plusargs. The control inputs are registered once inside (see below), so each acts one cycle
// after cocotb writes it.
//
// The clock: built with SQZHW_SV_CLOCK defined (Verilator with --timing), the top makes its own
// free-running clock of CLOCK_NS and `clk` is an output cocotb only watches; a clock toggled by
// cocotb costs a VPI callback every edge, which would dominate the run. Without it (Icarus),
// `clk` is an input driven by cocotb.

`timescale 1ns/1ps

module sim_top #(
    parameter int DATA_BITS = 32,
    parameter int MEM_WORDS = 1 << 20,
    parameter int DEFAULT_LATENCY = 4,
    parameter int N_COUNTERS = 9,
    parameter int CLOCK_NS = 10                   // period of the SV clock (SQZHW_SV_CLOCK)
) (
`ifdef SQZHW_SV_CLOCK
    output logic                    clk,
`else
    input  logic                    clk,
`endif
    input  logic                    rst,
    input  logic                    start,
    input  logic                    dump,
    input  logic [31:0]             insn_addr,
    input  logic [31:0]             insn_count,
    input  logic [31:0]             mem_bytes,
    input  logic [31:0]             wr_lo,
    input  logic [31:0]             wr_hi,
    output logic                    busy,
    output logic                    done,
    output logic [3:0]              error,
    output logic                    error_flag,
    output logic [31:0]             error_pc,
    output logic [32*N_COUNTERS-1:0] counters,
    output logic [63:0]             cycles,       // cycles since the last start
    output logic                    timed_out,
    output logic                    finished,     // done | error_flag | timed_out
    output logic [63:0]             n_reads,
    output logic [63:0]             n_writes,
    output logic [63:0]             n_oob,        // accesses past the modelled memory
    output logic [63:0]             n_wr_outside  // write handshakes outside [wr_lo, wr_hi)
);
    localparam int EXT_BYTES = DATA_BITS / 8;

    // cocotb's inputs go through one register: written by VPI, a top input makes Verilator
    // re-evaluate all logic combinational from it (the ready/valid cone of the memory model and
    // the engine) at every evaluation; a register confines it to one flop. Reset is on at time 0.
    logic        rst_r = 1'b1, start_r = 1'b0, dump_r = 1'b0;
    logic [31:0] insn_addr_r = '0, insn_count_r = '0, mem_bytes_r = '0, wr_lo_r = '0, wr_hi_r = '0;
    always @(posedge clk) begin
        rst_r        <= rst;
        start_r      <= start;
        dump_r       <= dump;
        insn_addr_r  <= insn_addr;
        insn_count_r <= insn_count;
        mem_bytes_r  <= mem_bytes;
        wr_lo_r      <= wr_lo;
        wr_hi_r      <= wr_hi;
    end

`ifdef SQZHW_SV_CLOCK
    // Low at time 0, first rising edge at CLOCK_NS/2.
    initial begin
        clk = 1'b0;
        forever #(CLOCK_NS / 2) clk = ~clk;
    end
`endif

    logic                 rd_cmd_valid, rd_cmd_ready;
    logic [31:0]          rd_cmd_addr;
    logic                 rd_data_valid, rd_data_ready;
    logic [DATA_BITS-1:0] rd_data;
    logic                 wr_valid, wr_ready;
    logic [32+DATA_BITS-1:0] wr_payload;

    sqzhw_engine engine (
        .clk(clk),
        .rst(rst_r),
        .start(start_r),
        .insn_addr(insn_addr_r),
        .insn_count(insn_count_r),
        .mem_bytes(mem_bytes_r),
        .wr_lo(wr_lo_r),
        .wr_hi(wr_hi_r),
        .busy(busy),
        .done(done),
        .error(error),
        .error_pc(error_pc),
        .counters(counters),
        .rd_cmd__valid(rd_cmd_valid),
        .rd_cmd__ready(rd_cmd_ready),
        .rd_cmd__payload(rd_cmd_addr),
        .rd_data__valid(rd_data_valid),
        .rd_data__ready(rd_data_ready),
        .rd_data__payload(rd_data),
        .wr__valid(wr_valid),
        .wr__ready(wr_ready),
        .wr__payload(wr_payload)
    );

    ext_mem #(
        .DATA_BITS(DATA_BITS),
        .MEM_WORDS(MEM_WORDS),
        .DEFAULT_LATENCY(DEFAULT_LATENCY)
    ) memory (
        .clk(clk),
        .rst(rst_r),
        .rd_cmd_valid(rd_cmd_valid),
        .rd_cmd_ready(rd_cmd_ready),
        .rd_cmd_addr(rd_cmd_addr),
        .rd_data_valid(rd_data_valid),
        .rd_data_ready(rd_data_ready),
        .rd_data(rd_data),
        .wr_valid(wr_valid),
        .wr_ready(wr_ready),
        .wr_addr(wr_payload[31:0]),
        .wr_data(wr_payload[32+DATA_BITS-1:32]),
        .dump(dump_r),
        .n_reads(n_reads),
        .n_writes(n_writes),
        .n_oob(n_oob)
    );

    // ---- run bookkeeping: cycle count, built-in timeout, write-window monitor ---------------
    longint unsigned timeout_cycles;
    initial begin
        timeout_cycles = 0;
        if ($value$plusargs("TIMEOUT_CYCLES=%d", timeout_cycles)) begin end
    end

    // +WAVES=<file>: dump every signal (VCD on Icarus) for debugging; off by default.
    // (Icarus only: Verilator needs --trace at build time for this.)
`ifndef VERILATOR
    string waves_file;
    initial begin
        if ($value$plusargs("WAVES=%s", waves_file)) begin
            $dumpfile(waves_file);
            $dumpvars(0, sim_top);
        end
    end
`endif

    logic running;
    assign error_flag = error != 0;
    assign timed_out  = running && timeout_cycles != 0 && cycles >= timeout_cycles;
    assign finished   = done || error_flag || timed_out;

    wire [63:0] wr_byte = {32'b0, wr_payload[31:0]} * EXT_BYTES;

    always @(posedge clk) begin
        if (rst_r) begin
            running      <= 0;
            cycles       <= 0;
            n_wr_outside <= 0;
        end else begin
            if (start_r) begin
                running <= 1;
                cycles  <= 0;
            end else if (running && !finished) begin
                cycles <= cycles + 1;
            end
            if (wr_valid && wr_ready && (wr_byte < {32'b0, wr_lo_r} || wr_byte >= {32'b0, wr_hi_r}))
                n_wr_outside <= n_wr_outside + 1;
        end
    end
endmodule
