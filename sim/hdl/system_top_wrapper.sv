// Simulation top for the full system (boards.common.SystemTop exported as `sqzhw_system`).
//
// The host side of the link is done here in HDL so that cocotb does not run a Python callback per
// clock cycle (see sqzhw/driver/sim_transport.py):
//
// * host -> device: cocotb writes up to TX_BYTES bytes at once into the wide `h2d_data` vector
//   (byte i in bits 8i+7:8i), sets `h2d_len` and toggles `h2d_go`; the wrapper then feeds them
//   back-to-back into the link and raises `h2d_idle` when the last one is taken. The next burst
//   may follow at once, while the device still answers earlier requests: the host link keeps
//   request bytes in its receive FIFO (windowed writes), whose `ready` paces the stream link.
// * device -> host: every byte the link sends is appended to the `d2h_ring` ring buffer
//   (RX_BYTES, a power of two) at index `d2h_count % RX_BYTES`. `d2h_wake` is high when bytes
//   beyond the host's read pointer `d2h_seen` have arrived and the link has then been quiet for
//   `quiet_cycles` cycles, so cocotb waits for one edge per response, not one per byte.
//
// With `SQZHW_UART_LINK defined the system has UART pins (link="uart") and the wrapper is the
// host's UART: an 8N1 transmitter and receiver at DIVISOR clock cycles per bit (written here,
// independently of rtl_gen/uart.py, so the two check each other). Otherwise the system has the
// `host_rx` / `host_tx` byte streams (link="stream"). `SQZHW_SDRAM_MODEL connects the SDRAM
// model's `mem_violation` output (memory="sdram-model"), `SQZHW_DDR3_MODEL the DDR3 model's
// (memory="ddr3-model", a 5-bit code of its own enum); with block RAM it reads 0.

`timescale 1ns/1ps

module sqzhw_system_tb #(
    parameter int TX_BYTES = 1024,
    parameter int RX_BYTES = 4096,
    parameter int DIVISOR = 8
) (
    input  logic                    clk,
    input  logic                    rst,
    // host -> device
    input  logic [8*TX_BYTES-1:0]   h2d_data,
    input  logic [15:0]             h2d_len,
    input  logic                    h2d_go,        // toggle: send h2d_len bytes of h2d_data
    output logic                    h2d_idle,
    output logic [31:0]             h2d_count,     // bytes handed to the link since reset
    // device -> host
    output logic [8*RX_BYTES-1:0]   d2h_ring,
    output logic [31:0]             d2h_count,     // bytes received since reset
    output logic [31:0]             d2h_quiet,     // cycles since the last byte (saturating)
    input  logic [31:0]             d2h_seen,
    input  logic [31:0]             quiet_cycles,
    output logic                    d2h_wake,
    output logic [31:0]             framing_errors, // UART: bytes with a low stop bit
    // status
    output logic                    busy,
    output logic                    done,
    output logic                    error,
    output logic [4:0]              mem_violation,
    output logic [63:0]             cycles
);
    localparam int RX_BITS = $clog2(RX_BYTES);

    // Only the memory models report timing violations (memory="sdram-model" / "ddr3-model").
`ifdef SQZHW_SDRAM_MODEL
    `define SQZHW_VIOLATION_PORT , .mem_violation(mem_violation[3:0])
    assign mem_violation[4] = 0;
`elsif SQZHW_DDR3_MODEL
    `define SQZHW_VIOLATION_PORT , .mem_violation(mem_violation)
`else
    `define SQZHW_VIOLATION_PORT
    assign mem_violation = 0;
`endif

    // -- host -> device byte source ---------------------------------------------------------------
    logic        go_seen;
    logic [15:0] tx_len, tx_idx;
    logic        src_valid, src_ready;
    logic [7:0]  src_byte;

    assign src_valid = (go_seen == h2d_go) && (tx_idx != tx_len);
    assign src_byte = h2d_data[8*tx_idx +: 8];
    assign h2d_idle = (go_seen == h2d_go) && (tx_idx == tx_len);

    always_ff @(posedge clk) begin
        if (rst) begin
            go_seen <= h2d_go;
            tx_len <= 0;
            tx_idx <= 0;
            h2d_count <= 0;
        end else if (go_seen != h2d_go) begin
            go_seen <= h2d_go;
            tx_len <= (h2d_len > TX_BYTES) ? 16'(TX_BYTES) : h2d_len;
            tx_idx <= 0;
        end else if (src_valid && src_ready) begin
            tx_idx <= tx_idx + 1;
            h2d_count <= h2d_count + 1;
        end
    end

    // -- device -> host byte sink -----------------------------------------------------------------
    logic       snk_valid;
    logic [7:0] snk_byte;

    always_ff @(posedge clk) begin
        if (rst) begin
            d2h_count <= 0;
            d2h_quiet <= 32'hFFFF_FFFF;
        end else if (snk_valid) begin
            d2h_ring[8*d2h_count[RX_BITS-1:0] +: 8] <= snk_byte;
            d2h_count <= d2h_count + 1;
            d2h_quiet <= 0;
        end else if (d2h_quiet != 32'hFFFF_FFFF) begin
            d2h_quiet <= d2h_quiet + 1;
        end
    end
    assign d2h_wake = (d2h_count != d2h_seen) && (d2h_quiet >= quiet_cycles);

    always_ff @(posedge clk) begin
        if (rst) cycles <= 0;
        else cycles <= cycles + 1;
    end

`ifdef SQZHW_UART_LINK
    // -- host UART transmitter: start bit, 8 data bits LSB first, stop bit ----------------------
    logic        uart_rx, uart_tx;
    logic [9:0]  tx_shift;
    logic [3:0]  tx_bits;       // bits left in the current frame
    logic [31:0] tx_timer;

    assign src_ready = (tx_bits == 0);
    assign uart_rx = (tx_bits == 0) ? 1'b1 : tx_shift[0];
    always_ff @(posedge clk) begin
        if (rst) begin
            tx_bits <= 0;
            tx_timer <= 0;
            tx_shift <= 10'h3FF;
        end else if (tx_bits == 0) begin
            if (src_valid) begin
                tx_shift <= {1'b1, src_byte, 1'b0};
                tx_bits <= 10;
                tx_timer <= DIVISOR - 1;
            end
        end else if (tx_timer == 0) begin
            tx_shift <= {1'b1, tx_shift[9:1]};
            tx_bits <= tx_bits - 1;
            tx_timer <= DIVISOR - 1;
        end else begin
            tx_timer <= tx_timer - 1;
        end
    end

    // -- host UART receiver: sample each bit in its middle ----------------------------------------
    logic        rx_active;
    logic [3:0]  rx_bit;        // 0 = start bit, 1..8 data, 9 stop
    logic [31:0] rx_timer;
    logic [7:0]  rx_shift;
    always_ff @(posedge clk) begin
        snk_valid <= 0;
        if (rst) begin
            rx_active <= 0;
            framing_errors <= 0;
        end else if (!rx_active) begin
            if (!uart_tx) begin
                rx_active <= 1;
                rx_bit <= 0;
                rx_timer <= DIVISOR / 2 - 1;
            end
        end else if (rx_timer != 0) begin
            rx_timer <= rx_timer - 1;
        end else begin
            rx_timer <= DIVISOR - 1;
            rx_bit <= rx_bit + 1;
            if (rx_bit == 0) begin
                if (uart_tx) rx_active <= 0;            // a glitch, not a start bit
            end else if (rx_bit <= 8) begin
                rx_shift <= {uart_tx, rx_shift[7:1]};
            end else begin
                rx_active <= 0;
                if (uart_tx) begin
                    snk_valid <= 1;
                    snk_byte <= rx_shift;
                end else begin
                    framing_errors <= framing_errors + 1;
                end
            end
        end
    end

    sqzhw_system dut (
        .clk(clk), .rst(rst),
        .uart_rx(uart_rx), .uart_tx(uart_tx),
        .busy(busy), .done(done), .error(error) `SQZHW_VIOLATION_PORT
    );
`else
    // -- byte streams: the source feeds host_rx, the sink always takes host_tx -------------------
    logic       host_tx_valid;
    logic [7:0] host_tx_payload;
    assign snk_valid = host_tx_valid;
    assign snk_byte = host_tx_payload;
    assign framing_errors = 0;

    sqzhw_system dut (
        .clk(clk), .rst(rst),
        .host_rx__valid(src_valid), .host_rx__payload(src_byte), .host_rx__ready(src_ready),
        .host_tx__valid(host_tx_valid), .host_tx__payload(host_tx_payload), .host_tx__ready(1'b1),
        .busy(busy), .done(done), .error(error) `SQZHW_VIOLATION_PORT
    );
`endif
endmodule
