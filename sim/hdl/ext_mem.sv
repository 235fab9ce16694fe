// External-memory model for the sqzhw engine (simulation only; Verilator 5 and Icarus -g2012).
//
// Byte-addressed memory stored as MEM_WORDS words of DATA_BITS; word w holds bytes
// [w*E, (w+1)*E) little-endian (byte 0 in bits 7:0), as docs/architecture.md "Byte order" says.
//
// * Reads: a request on rd_cmd (word address) is served in order after a fixed latency. The data
//   is captured when the request is accepted, so a read requested after a write handshake sees the
//   written data and a read requested before it does not.
// * Writes: complete at their handshake on wr.
// * Back-pressure: pseudo-random stalls (xorshift32 LFSR per channel, seeded by +MEM_SEED) on
//   rd_cmd.ready, rd_data.valid and wr.ready with probability +MEM_STALL_PCT percent. A valid
//   already shown on rd_data is held until it is taken (the stream rule).
// * $readmemh at time 0 from +MEM_INIT=<file> (words 0 .. +MEM_INIT_WORDS-1 if given);
//   $writememh of words 0 .. +MEM_DUMP_WORDS-1 (default all) to +MEM_DUMP=<file> on every cycle
//   with `dump` high.
//
// Plusargs: MEM_INIT, MEM_INIT_WORDS, MEM_DUMP, MEM_DUMP_WORDS, MEM_LATENCY (>= 1 cycle),
// MEM_STALL_PCT (0..100), MEM_SEED.

`timescale 1ns/1ps

module ext_mem #(
    parameter int DATA_BITS = 32,
    parameter int MEM_WORDS = 1 << 20,
    parameter int QUEUE_DEPTH = 64,
    parameter int DEFAULT_LATENCY = 4
) (
    input  logic                 clk,
    input  logic                 rst,
    // read requests (word addresses)
    input  logic                 rd_cmd_valid,
    output logic                 rd_cmd_ready,
    input  logic [31:0]          rd_cmd_addr,
    // read responses, in request order
    output logic                 rd_data_valid,
    input  logic                 rd_data_ready,
    output logic [DATA_BITS-1:0] rd_data,
    // word writes
    input  logic                 wr_valid,
    output logic                 wr_ready,
    input  logic [31:0]          wr_addr,
    input  logic [DATA_BITS-1:0] wr_data,
    // dump the memory to +MEM_DUMP while high (sampled at the clock edge)
    input  logic                 dump,
    // statistics, for the testbench
    output logic [63:0]          n_reads,
    output logic [63:0]          n_writes,
    output logic [63:0]          n_oob            // accesses past MEM_WORDS (served as 0 / dropped)
);
    localparam int QBITS = $clog2(QUEUE_DEPTH);

    bit [DATA_BITS-1:0] mem [0:MEM_WORDS-1];

    string init_file, dump_file;
    int unsigned init_words, dump_words, latency, stall_pct, seed;
    logic has_dump;

    initial begin
        latency = DEFAULT_LATENCY;
        stall_pct = 0;
        seed = 1;
        init_words = MEM_WORDS;
        dump_words = MEM_WORDS;
        has_dump = 0;
        if ($value$plusargs("MEM_LATENCY=%d", latency)) begin end
        if ($value$plusargs("MEM_STALL_PCT=%d", stall_pct)) begin end
        if ($value$plusargs("MEM_SEED=%d", seed)) begin end
        if ($value$plusargs("MEM_INIT_WORDS=%d", init_words)) begin end
        if ($value$plusargs("MEM_DUMP_WORDS=%d", dump_words)) begin end
        if (latency < 1) latency = 1;
        if (stall_pct > 100) stall_pct = 100;
        if (init_words > MEM_WORDS || init_words == 0) init_words = MEM_WORDS;
        if (dump_words > MEM_WORDS || dump_words == 0) dump_words = MEM_WORDS;
        if ($value$plusargs("MEM_DUMP=%s", dump_file)) has_dump = 1;
        if ($value$plusargs("MEM_INIT=%s", init_file)) begin
            $readmemh(init_file, mem, 0, init_words - 1);
        end
    end

    // ---- pseudo-random stalls: one xorshift32 per channel -----------------------------------
    logic [31:0] lfsr_cmd, lfsr_rd, lfsr_wr;

    function automatic logic [31:0] xorshift32(input logic [31:0] s);
        logic [31:0] x;
        x = s;
        x = x ^ (x << 13);
        x = x ^ (x >> 17);
        x = x ^ (x << 5);
        return x;
    endfunction

    // A state that is never zero (xorshift's fixed point) whatever the seed.
    function automatic logic [31:0] seeded(input logic [31:0] s, input logic [31:0] salt);
        logic [31:0] x;
        x = (s * 32'h9E3779B1) ^ salt;
        return (x == 0) ? salt : x;
    endfunction

    logic stall_cmd, stall_rd, stall_wr;
    assign stall_cmd = (lfsr_cmd % 100) < stall_pct;
    assign stall_rd  = (lfsr_rd  % 100) < stall_pct;
    assign stall_wr  = (lfsr_wr  % 100) < stall_pct;

    // ---- the read queue: data captured at request time, released at its due cycle ----------
    logic [63:0]          cycle;
    logic [DATA_BITS-1:0] q_data [0:QUEUE_DEPTH-1];
    logic [63:0]          q_due  [0:QUEUE_DEPTH-1];
    logic [QBITS-1:0]     q_head, q_tail;
    logic [QBITS:0]       q_count;
    logic                 rd_held;       // rd_data_valid shown last cycle and not yet taken

    logic head_due;
    assign head_due = (q_count != 0) && (cycle >= q_due[q_head]);

    assign rd_cmd_ready  = !rst && !stall_cmd && (q_count < QUEUE_DEPTH);
    assign rd_data_valid = !rst && head_due && (rd_held || !stall_rd);
    assign rd_data       = q_data[q_head];
    assign wr_ready      = !rst && !stall_wr;

    wire push = rd_cmd_valid && rd_cmd_ready;
    wire pop  = rd_data_valid && rd_data_ready;

    always @(posedge clk) begin
        if (rst) begin
            cycle    <= 0;
            q_head   <= 0;
            q_tail   <= 0;
            q_count  <= 0;
            rd_held  <= 0;
            n_reads  <= 0;
            n_writes <= 0;
            n_oob    <= 0;
            lfsr_cmd <= seeded(seed, 32'h1234_5679);
            lfsr_rd  <= seeded(seed, 32'h0BAD_CAFE);
            lfsr_wr  <= seeded(seed, 32'h7FED_CBA9);
        end else begin
            cycle    <= cycle + 1;
            lfsr_cmd <= xorshift32(lfsr_cmd);
            lfsr_rd  <= xorshift32(lfsr_rd);
            lfsr_wr  <= xorshift32(lfsr_wr);
            rd_held  <= rd_data_valid && !rd_data_ready;
            if (push) begin
                q_data[q_tail] <= (rd_cmd_addr < MEM_WORDS) ? mem[rd_cmd_addr] : '0;
                q_due[q_tail] <= cycle + latency;
                q_tail <= q_tail + 1'b1;
                n_reads <= n_reads + 1;
            end
            if (pop) q_head <= q_head + 1'b1;
            q_count <= q_count + (push ? 1 : 0) - (pop ? 1 : 0);
            if (wr_valid && wr_ready) begin
                if (wr_addr < MEM_WORDS) mem[wr_addr] <= wr_data;
                n_writes <= n_writes + 1;
            end
            n_oob <= n_oob + ((push && rd_cmd_addr >= MEM_WORDS) ? 1 : 0)
                           + ((wr_valid && wr_ready && wr_addr >= MEM_WORDS) ? 1 : 0);
        end
        if (dump && has_dump) $writememh(dump_file, mem, 0, dump_words - 1);
    end
endmodule
