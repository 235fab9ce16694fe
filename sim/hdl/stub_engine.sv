// A stand-in for the real `sqzhw_engine` with the same ports, for testing the harness itself
// (memory model, stalls, latency, dump, timeouts) without the engine.
//
// On `start` it copies `insn_count * 16` bytes from `insn_addr` to `wr_lo`, one external word at a
// time (read, then write), and finishes with `done`. A read at or past `mem_bytes` or a write outside
// `[wr_lo, wr_hi)` stops it with error 5 (DRAM_RANGE) and `error_pc` = the word index. With
// `insn_count` = 0xFFFFFFFF it never finishes (for timeout tests). Counters: 0 = cycles,
// 8 = words copied.

`timescale 1ns/1ps

`ifndef STUB_DATA_BITS
`define STUB_DATA_BITS 32
`endif

module sqzhw_engine #(
    parameter int DATA_BITS = `STUB_DATA_BITS
) (
    input  logic                      clk,
    input  logic                      rst,
    input  logic                      start,
    input  logic [31:0]               insn_addr,
    input  logic [31:0]               insn_count,
    input  logic [31:0]               mem_bytes,
    input  logic [31:0]               wr_lo,
    input  logic [31:0]               wr_hi,
    output logic                      busy,
    output logic                      done,
    output logic [3:0]                error,
    output logic [31:0]               error_pc,
    output logic [32*9-1:0]           counters,
    output logic                      rd_cmd__valid,
    input  logic                      rd_cmd__ready,
    output logic [31:0]               rd_cmd__payload,
    input  logic                      rd_data__valid,
    output logic                      rd_data__ready,
    input  logic [DATA_BITS-1:0]      rd_data__payload,
    output logic                      wr__valid,
    input  logic                      wr__ready,
    output logic [32+DATA_BITS-1:0]   wr__payload
);
    localparam int E = DATA_BITS / 8;
    typedef enum logic [1:0] {IDLE, REQ, RESP, WRITE} state_t;
    state_t state;
    logic [31:0] index, words;
    logic [DATA_BITS-1:0] data;
    logic [31:0] n_cycles;

    wire [63:0] src = {32'b0, insn_addr} + {32'b0, index} * E;
    wire [63:0] dst = {32'b0, wr_lo} + {32'b0, index} * E;

    assign busy = state != IDLE;
    assign rd_cmd__valid = state == REQ && index != words && src + E <= {32'b0, mem_bytes};
    assign rd_cmd__payload = src[31:0] / E;
    assign rd_data__ready = state == RESP;
    assign wr__valid = state == WRITE;
    assign wr__payload = {data, dst[31:0] / E};
    assign counters = {index, {(32*7){1'b0}}, n_cycles};

    always @(posedge clk) begin
        if (rst) begin
            state <= IDLE;
            done <= 0;
            error <= 0;
            error_pc <= 0;
            index <= 0;
            n_cycles <= 0;
        end else begin
            if (state != IDLE) n_cycles <= n_cycles + 1;
            case (state)
                IDLE: if (start) begin
                    done <= 0;
                    error <= 0;
                    index <= 0;
                    n_cycles <= 1;
                    words <= (insn_count == 32'hFFFF_FFFF) ? 32'hFFFF_FFFF : insn_count * (16 / E);
                    state <= REQ;
                end
                REQ: begin
                    if (index == words) begin
                        done <= 1;
                        state <= IDLE;
                    end else if (src + E > {32'b0, mem_bytes}) begin
                        error <= 5;
                        error_pc <= index;
                        state <= IDLE;
                    end else if (rd_cmd__ready) begin
                        state <= RESP;
                    end
                end
                RESP: if (rd_data__valid) begin
                    data <= rd_data__payload;
                    if (dst < {32'b0, wr_lo} || dst + E > {32'b0, wr_hi}) begin
                        error <= 5;
                        error_pc <= index;
                        state <= IDLE;
                    end else begin
                        state <= WRITE;
                    end
                end
                WRITE: if (wr__ready) begin
                    index <= (words == 32'hFFFF_FFFF) ? 0 : index + 1;
                    state <= REQ;
                end
            endcase
        end
    end
endmodule
