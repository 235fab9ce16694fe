"""Vivado report texts for tests/test_xilinx.py: ``report_utilization`` (amaranth's
``top_utilization_place.rpt``) and ``report_timing_summary -datasheet -max_paths 10`` (``top_timing.rpt``)
of an Arty A7 build of this project, in the layouts Vivado 2019.1, 2023.2 and 2024.1 write for 7-series
parts. The numbers and clock names are this project's (an 8x8 engine: about 8,000 LUTs, 7,000 flip-flops,
77 DSP48E1, 28 block RAM tiles; the 100 MHz ``clk100_0__io`` and the clocks Vivado derives from it
at the MMCM's output nets, ``mmcm_sync``/``mmcm_sys2x``/``mmcm_sys2x_90``/``mmcm_idelay_ref``, and
its feedback, here ``mmcm_fb``); the text is written for these tests, not copied. The timing reports stop after the first clocks of their Timing Details section.
Lines keep Vivado's trailing blanks and widths (up to 260 columns: hence the noqa below).

Layouts studied (public reports, repository and path):

- samlarsen18/linux-on-litex-vexriscv: build/arty/gateware/top_utilization_place.rpt,
  build/arty/gateware/top_utilization_synth.rpt, build/arty/gateware/top_timing.rpt (Vivado 2019.1,
  xc7a35ti Arty with a DDR3 PHY: no Prohibited column, ``Block RAM Tile`` 40.5, ``Slice LUTs*`` in the
  synthesis report, PLL outputs and feedback with blank setup columns in the Intra Clock Table)
- caverar/SoC: build/top_utilization_place.rpt, build/top_timing.rpt (Vivado 2018.2, xc7a35t, the
  amaranth-style script's file names; MMCM feedback clock with pulse-width checks only)
- primeshp/pintorv32: build/top_utilization_place.rpt, build/top_timing.rpt (Vivado 2021.1: Prohibited
  column, ``Unique Control Sets`` with an Available count, Report Methodology section)
- NotCleo/TPU-Cores: reports/utilization.rpt, vivado/build/sobel_tpu_soc.runs/impl_1/
  system_wrapper_timing_summary_routed.rpt (Vivado 2023.2, xc7a100t: ``DSPs`` with ``DSP48E1 only``,
  the LUT-combining warning, Design State line, User Ignored Path Table)
- HugoHuang-dev/fpga-ddr3-gigabit-ethernet-daq: reports/utilization.rpt (Vivado 2018.3, xc7a35t with a
  DDR3 controller: five-digit Used columns, ISERDES/OSERDES rows)
- simonandz/fpga-power-test-accel: reports/timing_summary.rpt (Vivado 2024.2: Inter-SLR Compensation
  setting, Design State line)
- sjb565/fpga-video-enhancement, l-yc/quantum-juggler, ryxiao0/FPGA-3D:
  obj/post_route_timing_summary.rpt (Vivado 2023.1, 7-series: MMCM/PLL clocks without setup paths,
  clocks generated from generated clocks indented twice, a 40 % duty waveform, Inter Clock Table rows)

None of the public reports found failed timing; the failed ones here put Vivado's "Timing constraints
are not met." verdict and negative slacks into the same layout.
"""
# ruff: noqa: E501


#: Vivado 2023.2, xc7a35ti: Prohibited column, 28 block RAM tiles.
UTIL_A35T_2023 = """\
Copyright 1986-2022 Xilinx, Inc. All Rights Reserved. Copyright 2022-2023 Advanced Micro Devices, Inc. All Rights Reserved.
---------------------------------------------------------------------------------------------------------------------------------------------
| Tool Version : Vivado v.2023.2 (lin64) Build 4029153 Fri Oct 13 20:13:54 MDT 2023
| Date         : Tue Mar 11 14:02:37 2025
| Host         : buildhost running 64-bit Ubuntu 22.04.4 LTS
| Command      : report_utilization -file top_utilization_place.rpt
| Design       : top
| Device       : xc7a35ticsg324-1L
| Speed File   : -1L
| Design State : Fully Placed
---------------------------------------------------------------------------------------------------------------------------------------------

Utilization Design Information

Table of Contents
-----------------
1. Slice Logic
1.1 Summary of Registers by Type
2. Slice Logic Distribution
3. Memory
4. DSP
5. IO and GT Specific
6. Clocking
7. Specific Feature
8. Primitives
9. Black Boxes
10. Instantiated Netlists

1. Slice Logic
--------------

+----------------------------+------+-------+------------+-----------+-------+
|          Site Type         | Used | Fixed | Prohibited | Available | Util% |
+----------------------------+------+-------+------------+-----------+-------+
| Slice LUTs                 | 8123 |     0 |          0 |     20800 | 39.05 |
|   LUT as Logic             | 7795 |     0 |          0 |     20800 | 37.48 |
|   LUT as Memory            |  328 |     0 |          0 |      9600 |  3.42 |
|     LUT as Distributed RAM |  256 |     0 |            |           |       |
|     LUT as Shift Register  |   72 |     0 |            |           |       |
| Slice Registers            | 7012 |     0 |          0 |     41600 | 16.86 |
|   Register as Flip Flop    | 7012 |     0 |          0 |     41600 | 16.86 |
|   Register as Latch        |    0 |     0 |          0 |     41600 |  0.00 |
| F7 Muxes                   |  389 |     0 |          0 |     16300 |  2.39 |
| F8 Muxes                   |   97 |     0 |          0 |      8150 |  1.19 |
+----------------------------+------+-------+------------+-----------+-------+
* Warning! LUT value is adjusted to account for LUT combining.


1.1 Summary of Registers by Type
--------------------------------

+-------+--------------+-------------+--------------+
| Total | Clock Enable | Synchronous | Asynchronous |
+-------+--------------+-------------+--------------+
| 0     |            _ |           - |            - |
| 0     |            _ |           - |          Set |
| 0     |            _ |           - |        Reset |
| 0     |            _ |         Set |            - |
| 0     |            _ |       Reset |            - |
| 0     |          Yes |           - |            - |
| 38    |          Yes |           - |          Set |
| 0     |          Yes |           - |        Reset |
| 94    |          Yes |         Set |            - |
| 6880  |          Yes |       Reset |            - |
+-------+--------------+-------------+--------------+


2. Slice Logic Distribution
---------------------------

+--------------------------------------------+------+-------+------------+-----------+-------+
|                  Site Type                 | Used | Fixed | Prohibited | Available | Util% |
+--------------------------------------------+------+-------+------------+-----------+-------+
| Slice                                      | 2654 |     0 |          0 |      8150 | 32.56 |
|   SLICEL                                   | 1783 |     0 |            |           |       |
|   SLICEM                                   |  871 |     0 |            |           |       |
| LUT as Logic                               | 7795 |     0 |          0 |     20800 | 37.48 |
|   using O5 output only                     |    0 |       |            |           |       |
|   using O6 output only                     | 6421 |       |            |           |       |
|   using O5 and O6                          | 1374 |       |            |           |       |
| LUT as Memory                              |  328 |     0 |          0 |      9600 |  3.42 |
|   LUT as Distributed RAM                   |  256 |     0 |            |           |       |
|     using O5 output only                   |    0 |       |            |           |       |
|     using O6 output only                   |    0 |       |            |           |       |
|     using O5 and O6                        |  256 |       |            |           |       |
|   LUT as Shift Register                    |   72 |     0 |            |           |       |
|     using O5 output only                   |    4 |       |            |           |       |
|     using O6 output only                   |   60 |       |            |           |       |
|     using O5 and O6                        |    8 |       |            |           |       |
| Slice Registers                            | 7012 |     0 |          0 |     41600 | 16.86 |
|   Register driven from within the Slice    | 3470 |       |            |           |       |
|   Register driven from outside the Slice   | 3542 |       |            |           |       |
|     LUT in front of the register is unused | 2104 |       |            |           |       |
|     LUT in front of the register is used   | 1438 |       |            |           |       |
| Unique Control Sets                        |  212 |       |          0 |      8150 |  2.60 |
+--------------------------------------------+------+-------+------------+-----------+-------+
* * Note: Available Control Sets calculated as Slice * 1, Review the Control Sets Report for more information regarding control sets.


3. Memory
---------

+-------------------+------+-------+------------+-----------+-------+
|     Site Type     | Used | Fixed | Prohibited | Available | Util% |
+-------------------+------+-------+------------+-----------+-------+
| Block RAM Tile    |   28 |     0 |          0 |        50 | 56.00 |
|   RAMB36/FIFO*    |   27 |     0 |          0 |        50 | 54.00 |
|     RAMB36E1 only |   27 |       |            |           |       |
|   RAMB18          |    2 |     0 |          0 |       100 |  2.00 |
|     RAMB18E1 only |    2 |       |            |           |       |
+-------------------+------+-------+------------+-----------+-------+
* Note: Each Block RAM Tile only has one FIFO logic available and therefore can accommodate only one FIFO36E1 or one FIFO18E1. However, if a FIFO18E1 occupies a Block RAM Tile, that tile can still accommodate a RAMB18E1


4. DSP
------

+----------------+------+-------+------------+-----------+-------+
|    Site Type   | Used | Fixed | Prohibited | Available | Util% |
+----------------+------+-------+------------+-----------+-------+
| DSPs           |   77 |     0 |          0 |        90 | 85.56 |
|   DSP48E1 only |   77 |       |            |           |       |
+----------------+------+-------+------------+-----------+-------+


5. IO and GT Specific
---------------------

+-----------------------------+------+-------+------------+-----------+-------+
|          Site Type          | Used | Fixed | Prohibited | Available | Util% |
+-----------------------------+------+-------+------------+-----------+-------+
| Bonded IOB                  |   55 |    55 |          0 |       210 | 26.19 |
|   IOB Master Pads           |   27 |       |            |           |       |
|   IOB Slave Pads            |   26 |       |            |           |       |
| Bonded IPADs                |    0 |     0 |          0 |         2 |  0.00 |
| PHY_CONTROL                 |    0 |     0 |          0 |         5 |  0.00 |
| PHASER_REF                  |    0 |     0 |          0 |         5 |  0.00 |
| OUT_FIFO                    |    0 |     0 |          0 |        20 |  0.00 |
| IN_FIFO                     |    0 |     0 |          0 |        20 |  0.00 |
| IDELAYCTRL                  |    1 |     0 |          0 |         5 | 20.00 |
| IBUFDS                      |    0 |     0 |          0 |       202 |  0.00 |
| PHASER_OUT/PHASER_OUT_PHY   |    0 |     0 |          0 |        20 |  0.00 |
| PHASER_IN/PHASER_IN_PHY     |    0 |     0 |          0 |        20 |  0.00 |
| IDELAYE2/IDELAYE2_FINEDELAY |   16 |    16 |          0 |       250 |  6.40 |
|   IDELAYE2 only             |   16 |    16 |            |           |       |
| ILOGIC                      |   16 |    16 |          0 |       210 |  7.62 |
|   ISERDES                   |   16 |    16 |            |           |       |
| OLOGIC                      |   43 |    43 |          0 |       210 | 20.48 |
|   OSERDES                   |   43 |    43 |            |           |       |
+-----------------------------+------+-------+------------+-----------+-------+


6. Clocking
-----------

+------------+------+-------+------------+-----------+-------+
|  Site Type | Used | Fixed | Prohibited | Available | Util% |
+------------+------+-------+------------+-----------+-------+
| BUFGCTRL   |    4 |     0 |          0 |        32 | 12.50 |
| BUFIO      |    0 |     0 |          0 |        20 |  0.00 |
| MMCME2_ADV |    1 |     0 |          0 |         5 | 20.00 |
| PLLE2_ADV  |    0 |     0 |          0 |         5 |  0.00 |
| BUFMRCE    |    0 |     0 |          0 |        10 |  0.00 |
| BUFHCE     |    0 |     0 |          0 |        72 |  0.00 |
| BUFR       |    0 |     0 |          0 |        20 |  0.00 |
+------------+------+-------+------------+-----------+-------+


7. Specific Feature
-------------------

+-------------+------+-------+------------+-----------+-------+
|  Site Type  | Used | Fixed | Prohibited | Available | Util% |
+-------------+------+-------+------------+-----------+-------+
| BSCANE2     |    0 |     0 |          0 |         4 |  0.00 |
| CAPTUREE2   |    0 |     0 |          0 |         1 |  0.00 |
| DNA_PORT    |    0 |     0 |          0 |         1 |  0.00 |
| EFUSE_USR   |    0 |     0 |          0 |         1 |  0.00 |
| FRAME_ECCE2 |    0 |     0 |          0 |         1 |  0.00 |
| ICAPE2      |    0 |     0 |          0 |         2 |  0.00 |
| PCIE_2_1    |    0 |     0 |          0 |         1 |  0.00 |
| STARTUPE2   |    0 |     0 |          0 |         1 |  0.00 |
| XADC        |    0 |     0 |          0 |         1 |  0.00 |
+-------------+------+-------+------------+-----------+-------+


8. Primitives
-------------

+------------+------+---------------------+
|  Ref Name  | Used | Functional Category |
+------------+------+---------------------+
| FDRE       | 6880 |        Flop & Latch |
| LUT6       | 2961 |                 LUT |
| LUT4       | 1402 |                 LUT |
| LUT5       | 1288 |                 LUT |
| LUT3       | 1121 |                 LUT |
| LUT2       | 1054 |                 LUT |
| CARRY4     |  612 |          CarryLogic |
| MUXF7      |  389 |               MuxFx |
| RAMD32     |  384 |  Distributed Memory |
| LUT1       |  218 |                 LUT |
| RAMS32     |  128 |  Distributed Memory |
| MUXF8      |   97 |               MuxFx |
| FDSE       |   94 |        Flop & Latch |
| DSP48E1    |   77 |    Block Arithmetic |
| SRL16E     |   60 |  Distributed Memory |
| OSERDESE2  |   43 |                  IO |
| FDPE       |   38 |        Flop & Latch |
| OBUF       |   33 |                  IO |
| RAMB36E1   |   27 |        Block Memory |
| IBUF       |   19 |                  IO |
| OBUFT      |   16 |                  IO |
| ISERDESE2  |   16 |                  IO |
| IDELAYE2   |   16 |                  IO |
| SRLC32E    |   12 |  Distributed Memory |
| BUFG       |    4 |               Clock |
| OBUFTDS    |    2 |                  IO |
| RAMB18E1   |    2 |        Block Memory |
| OBUFDS     |    1 |                  IO |
| MMCME2_ADV |    1 |               Clock |
| IDELAYCTRL |    1 |                  IO |
+------------+------+---------------------+


9. Black Boxes
--------------

+----------+------+
| Ref Name | Used |
+----------+------+


10. Instantiated Netlists
-------------------------

+----------+------+
| Ref Name | Used |
+----------+------+


"""

#: Vivado 2023.2, engine at 100 MHz, met: the oscillator, the MMCM feedback, ``mmcm_idelay_ref`` and
#: ``mmcm_sys2x_90`` have no setup paths (blank WNS), only pulse-width checks.
TIMING_A35T_2023_MET = """\
Copyright 1986-2022 Xilinx, Inc. All Rights Reserved. Copyright 2022-2023 Advanced Micro Devices, Inc. All Rights Reserved.
---------------------------------------------------------------------------------------------------------------------------------------------
| Tool Version : Vivado v.2023.2 (lin64) Build 4029153 Fri Oct 13 20:13:54 MDT 2023
| Date         : Tue Mar 11 14:09:52 2025
| Host         : buildhost running 64-bit Ubuntu 22.04.4 LTS
| Command      : report_timing_summary -datasheet -max_paths 10 -file top_timing.rpt
| Design       : top
| Device       : 7a35ti-csg324
| Speed File   : -1L  PRODUCTION 1.23 2018-06-13
| Design State : Routed
---------------------------------------------------------------------------------------------------------------------------------------------

Timing Summary Report

------------------------------------------------------------------------------------------------
| Timer Settings
| --------------
------------------------------------------------------------------------------------------------

  Enable Multi Corner Analysis               :  Yes
  Enable Pessimism Removal                   :  Yes
  Pessimism Removal Resolution               :  Nearest Common Node
  Enable Input Delay Default Clock           :  No
  Enable Preset / Clear Arcs                 :  No
  Disable Flight Delays                      :  No
  Ignore I/O Paths                           :  No
  Timing Early Launch at Borrowing Latches   :  No
  Borrow Time for Max Delay Exceptions       :  Yes
  Merge Timing Exceptions                    :  Yes
  Inter-SLR Compensation                     :  Conservative

  Corner  Analyze    Analyze    
  Name    Max Paths  Min Paths  
  ------  ---------  ---------  
  Slow    Yes        Yes        
  Fast    Yes        Yes        


------------------------------------------------------------------------------------------------
| Report Methodology
| ------------------
------------------------------------------------------------------------------------------------

Rule       Severity          Description                                  Violations  
---------  ----------------  -------------------------------------------  ----------  
TIMING-18  Warning           Missing input or output delay                24          
LUTAR-1    Warning           LUT drives async reset alert                 2           

Note: This report is based on the most recent report_methodology run and may not be up-to-date. Run report_methodology on the current design for the latest report.




check_timing report

Table of Contents
-----------------
1. checking no_clock (0)
2. checking constant_clock (0)
3. checking pulse_width_clock (0)
4. checking unconstrained_internal_endpoints (0)
5. checking no_input_delay (3)
6. checking no_output_delay (33)
7. checking multiple_clock (0)
8. checking generated_clocks (0)
9. checking loops (0)
10. checking partial_input_delay (0)
11. checking partial_output_delay (0)
12. checking latch_loops (0)

1. checking no_clock (0)
------------------------
 There are 0 register/latch pins with no clock.


2. checking constant_clock (0)
------------------------------
 There are 0 register/latch pins with constant_clock.


3. checking pulse_width_clock (0)
---------------------------------
 There are 0 register/latch pins which need pulse_width check


4. checking unconstrained_internal_endpoints (0)
------------------------------------------------
 There are 0 pins that are not constrained for maximum delay.

 There are 0 pins that are not constrained for maximum delay due to constant clock.


5. checking no_input_delay (3)
------------------------------
 There are 3 input ports with no input delay specified. (HIGH)

 There are 0 input ports with no input delay but user has a false path constraint.


6. checking no_output_delay (33)
--------------------------------
 There are 33 ports with no output delay specified. (HIGH)

 There are 0 ports with no output delay but user has a false path constraint

 There are 0 ports with no output delay but with a timing clock defined on it or propagating through it


7. checking multiple_clock (0)
------------------------------
 There are 0 register/latch pins with multiple clocks.


8. checking generated_clocks (0)
--------------------------------
 There are 0 generated clocks that are not connected to a clock source.


9. checking loops (0)
---------------------
 There are 0 combinational loops in the design.


10. checking partial_input_delay (0)
------------------------------------
 There are 0 input ports with partial input delay specified.


11. checking partial_output_delay (0)
-------------------------------------
 There are 0 ports with partial output delay specified.


12. checking latch_loops (0)
----------------------------
 There are 0 combinational latch loops in the design through latch input



------------------------------------------------------------------------------------------------
| Design Timing Summary
| ---------------------
------------------------------------------------------------------------------------------------

    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints     WPWS(ns)     TPWS(ns)  TPWS Failing Endpoints  TPWS Total Endpoints  
    -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------     --------     --------  ----------------------  --------------------  
      0.412        0.000                      0                24287        0.043        0.000                      0                24287        2.845        0.000                       0                  7383  


All user specified timing constraints are met.


------------------------------------------------------------------------------------------------
| Clock Summary
| -------------
------------------------------------------------------------------------------------------------

Clock              Waveform(ns)        Period(ns)      Frequency(MHz)
-----              ------------        ----------      --------------
clk100_0__io       {0.000 5.000}       10.000          100.000         
  mmcm_fb          {0.000 5.000}       10.000          100.000         
  mmcm_idelay_ref  {0.000 2.500}       5.000           200.000         
  mmcm_sync        {0.000 5.000}       10.000          100.000         
  mmcm_sys2x       {0.000 2.500}       5.000           200.000         
  mmcm_sys2x_90    {1.250 3.750}       5.000           200.000         


------------------------------------------------------------------------------------------------
| Intra Clock Table
| -----------------
------------------------------------------------------------------------------------------------

Clock                  WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints     WPWS(ns)     TPWS(ns)  TPWS Failing Endpoints  TPWS Total Endpoints  
-----                  -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------     --------     --------  ----------------------  --------------------  
clk100_0__io                                                                                                                                                         3.000        0.000                       0                     1  
  mmcm_fb                                                                                                                                                            8.751        0.000                       0                     2  
  mmcm_idelay_ref                                                                                                                                                    2.845        0.000                       0                     2  
  mmcm_sync              0.412        0.000                      0                24187        0.043        0.000                      0                24187        3.750        0.000                       0                  7304  
  mmcm_sys2x             2.871        0.000                      0                   36        0.121        0.000                      0                   36        2.845        0.000                       0                    68  
  mmcm_sys2x_90                                                                                                                                                      3.249        0.000                       0                     6  


------------------------------------------------------------------------------------------------
| Inter Clock Table
| -----------------
------------------------------------------------------------------------------------------------

From Clock    To Clock          WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints  
----------    --------          -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------  
mmcm_sync     mmcm_sys2x          1.093        0.000                      0                   48        0.087        0.000                      0                   48  
mmcm_sys2x    mmcm_sync           2.214        0.000                      0                   16        0.164        0.000                      0                   16  


------------------------------------------------------------------------------------------------
| Other Path Groups Table
| -----------------------
------------------------------------------------------------------------------------------------

Path Group    From Clock    To Clock          WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints  
----------    ----------    --------          -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------  


------------------------------------------------------------------------------------------------
| User Ignored Path Table
| -----------------------
------------------------------------------------------------------------------------------------

Path Group                     From Clock To Clock   
----------                     ---------- --------   
(none)                         mmcm_sync             
(none)                                    mmcm_sync  
(none)                         mmcm_sync  mmcm_sync  


------------------------------------------------------------------------------------------------
| Timing Details
| --------------
------------------------------------------------------------------------------------------------


---------------------------------------------------------------------------------------------------
From Clock:  clk100_0__io
  To Clock:  clk100_0__io

Setup :           NA  Failing Endpoints,  Worst Slack           NA  ,  Total Violation           NA
Hold  :           NA  Failing Endpoints,  Worst Slack           NA  ,  Total Violation           NA
PW    :            0  Failing Endpoints,  Worst Slack        3.000ns,  Total Violation        0.000ns
---------------------------------------------------------------------------------------------------


---------------------------------------------------------------------------------------------------
From Clock:  mmcm_sync
  To Clock:  mmcm_sync

Setup :            0  Failing Endpoints,  Worst Slack        0.412ns,  Total Violation        0.000ns
Hold  :            0  Failing Endpoints,  Worst Slack        0.043ns,  Total Violation        0.000ns
PW    :            0  Failing Endpoints,  Worst Slack        3.750ns,  Total Violation        0.000ns
---------------------------------------------------------------------------------------------------

"""

#: Vivado 2019.1, xc7a35ti: no Prohibited column, 27.5 block RAM tiles.
UTIL_A35T_2019 = """\
Copyright 1986-2019 Xilinx, Inc. All Rights Reserved.
------------------------------------------------------------------------------------
| Tool Version : Vivado v.2019.1 (lin64) Build 2552052 Fri May 24 14:47:09 MDT 2019
| Date         : Thu Jan 16 09:41:12 2020
| Host         : buildhost running 64-bit Ubuntu 18.04.3 LTS
| Command      : report_utilization -file top_utilization_place.rpt
| Design       : top
| Device       : 7a35ticsg324-1L
| Design State : Fully Placed
------------------------------------------------------------------------------------

Utilization Design Information

Table of Contents
-----------------
1. Slice Logic
1.1 Summary of Registers by Type
2. Slice Logic Distribution
3. Memory
4. DSP
5. IO and GT Specific
6. Clocking
7. Specific Feature
8. Primitives
9. Black Boxes
10. Instantiated Netlists

1. Slice Logic
--------------

+----------------------------+------+-------+-----------+-------+
|          Site Type         | Used | Fixed | Available | Util% |
+----------------------------+------+-------+-----------+-------+
| Slice LUTs                 | 8347 |     0 |     20800 | 40.13 |
|   LUT as Logic             | 8019 |     0 |     20800 | 38.55 |
|   LUT as Memory            |  328 |     0 |      9600 |  3.42 |
|     LUT as Distributed RAM |  256 |     0 |           |       |
|     LUT as Shift Register  |   72 |     0 |           |       |
| Slice Registers            | 7043 |     0 |     41600 | 16.93 |
|   Register as Flip Flop    | 7043 |     0 |     41600 | 16.93 |
|   Register as Latch        |    0 |     0 |     41600 |  0.00 |
| F7 Muxes                   |  402 |     0 |     16300 |  2.47 |
| F8 Muxes                   |  101 |     0 |      8150 |  1.24 |
+----------------------------+------+-------+-----------+-------+


1.1 Summary of Registers by Type
--------------------------------

+-------+--------------+-------------+--------------+
| Total | Clock Enable | Synchronous | Asynchronous |
+-------+--------------+-------------+--------------+
| 0     |            _ |           - |            - |
| 0     |            _ |           - |          Set |
| 0     |            _ |           - |        Reset |
| 0     |            _ |         Set |            - |
| 0     |            _ |       Reset |            - |
| 0     |          Yes |           - |            - |
| 38    |          Yes |           - |          Set |
| 0     |          Yes |           - |        Reset |
| 94    |          Yes |         Set |            - |
| 6911  |          Yes |       Reset |            - |
+-------+--------------+-------------+--------------+


2. Slice Logic Distribution
---------------------------

+--------------------------------------------+------+-------+-----------+-------+
|                  Site Type                 | Used | Fixed | Available | Util% |
+--------------------------------------------+------+-------+-----------+-------+
| Slice                                      | 2702 |     0 |      8150 | 33.15 |
|   SLICEL                                   | 1805 |     0 |           |       |
|   SLICEM                                   |  897 |     0 |           |       |
| LUT as Logic                               | 8019 |     0 |     20800 | 38.55 |
|   using O5 output only                     |    0 |       |           |       |
|   using O6 output only                     | 6598 |       |           |       |
|   using O5 and O6                          | 1421 |       |           |       |
| LUT as Memory                              |  328 |     0 |      9600 |  3.42 |
|   LUT as Distributed RAM                   |  256 |     0 |           |       |
|     using O5 output only                   |    0 |       |           |       |
|     using O6 output only                   |    0 |       |           |       |
|     using O5 and O6                        |  256 |       |           |       |
|   LUT as Shift Register                    |   72 |     0 |           |       |
|     using O5 output only                   |    4 |       |           |       |
|     using O6 output only                   |   60 |       |           |       |
|     using O5 and O6                        |    8 |       |           |       |
| Slice Registers                            | 7043 |     0 |     41600 | 16.93 |
|   Register driven from within the Slice    | 3391 |       |           |       |
|   Register driven from outside the Slice   | 3652 |       |           |       |
|     LUT in front of the register is unused | 2230 |       |           |       |
|     LUT in front of the register is used   | 1422 |       |           |       |
| Unique Control Sets                        |  215 |       |      8150 |  2.64 |
+--------------------------------------------+------+-------+-----------+-------+
* Note: Available Control Sets calculated as Slice Registers / 8, Review the Control Sets Report for more information regarding control sets.


3. Memory
---------

+-------------------+------+-------+-----------+-------+
|     Site Type     | Used | Fixed | Available | Util% |
+-------------------+------+-------+-----------+-------+
| Block RAM Tile    | 27.5 |     0 |        50 | 55.00 |
|   RAMB36/FIFO*    |   27 |     0 |        50 | 54.00 |
|     RAMB36E1 only |   27 |       |           |       |
|   RAMB18          |    1 |     0 |       100 |  1.00 |
|     RAMB18E1 only |    1 |       |           |       |
+-------------------+------+-------+-----------+-------+
* Note: Each Block RAM Tile only has one FIFO logic available and therefore can accommodate only one FIFO36E1 or one FIFO18E1. However, if a FIFO18E1 occupies a Block RAM Tile, that tile can still accommodate a RAMB18E1


4. DSP
------

+----------------+------+-------+-----------+-------+
|    Site Type   | Used | Fixed | Available | Util% |
+----------------+------+-------+-----------+-------+
| DSPs           |   77 |     0 |        90 | 85.56 |
|   DSP48E1 only |   77 |       |           |       |
+----------------+------+-------+-----------+-------+


5. IO and GT Specific
---------------------

+-----------------------------+------+-------+-----------+-------+
|          Site Type          | Used | Fixed | Available | Util% |
+-----------------------------+------+-------+-----------+-------+
| Bonded IOB                  |   55 |    55 |       210 | 26.19 |
|   IOB Master Pads           |   27 |       |           |       |
|   IOB Slave Pads            |   26 |       |           |       |
| Bonded IPADs                |    0 |     0 |         2 |  0.00 |
| PHY_CONTROL                 |    0 |     0 |         5 |  0.00 |
| PHASER_REF                  |    0 |     0 |         5 |  0.00 |
| OUT_FIFO                    |    0 |     0 |        20 |  0.00 |
| IN_FIFO                     |    0 |     0 |        20 |  0.00 |
| IDELAYCTRL                  |    1 |     0 |         5 | 20.00 |
| IBUFDS                      |    0 |     0 |       202 |  0.00 |
| PHASER_OUT/PHASER_OUT_PHY   |    0 |     0 |        20 |  0.00 |
| PHASER_IN/PHASER_IN_PHY     |    0 |     0 |        20 |  0.00 |
| IDELAYE2/IDELAYE2_FINEDELAY |   16 |    16 |       250 |  6.40 |
|   IDELAYE2 only             |   16 |    16 |           |       |
| ILOGIC                      |   16 |    16 |       210 |  7.62 |
|   ISERDES                   |   16 |    16 |           |       |
| OLOGIC                      |   43 |    43 |       210 | 20.48 |
|   OSERDES                   |   43 |    43 |           |       |
+-----------------------------+------+-------+-----------+-------+


6. Clocking
-----------

+------------+------+-------+-----------+-------+
|  Site Type | Used | Fixed | Available | Util% |
+------------+------+-------+-----------+-------+
| BUFGCTRL   |    4 |     0 |        32 | 12.50 |
| BUFIO      |    0 |     0 |        20 |  0.00 |
| MMCME2_ADV |    1 |     0 |         5 | 20.00 |
| PLLE2_ADV  |    0 |     0 |         5 |  0.00 |
| BUFMRCE    |    0 |     0 |        10 |  0.00 |
| BUFHCE     |    0 |     0 |        72 |  0.00 |
| BUFR       |    0 |     0 |        20 |  0.00 |
+------------+------+-------+-----------+-------+


7. Specific Feature
-------------------

+-------------+------+-------+-----------+-------+
|  Site Type  | Used | Fixed | Available | Util% |
+-------------+------+-------+-----------+-------+
| BSCANE2     |    0 |     0 |         4 |  0.00 |
| CAPTUREE2   |    0 |     0 |         1 |  0.00 |
| DNA_PORT    |    0 |     0 |         1 |  0.00 |
| EFUSE_USR   |    0 |     0 |         1 |  0.00 |
| FRAME_ECCE2 |    0 |     0 |         1 |  0.00 |
| ICAPE2      |    0 |     0 |         2 |  0.00 |
| PCIE_2_1    |    0 |     0 |         1 |  0.00 |
| STARTUPE2   |    0 |     0 |         1 |  0.00 |
| XADC        |    0 |     0 |         1 |  0.00 |
+-------------+------+-------+-----------+-------+


8. Primitives
-------------

+------------+------+---------------------+
|  Ref Name  | Used | Functional Category |
+------------+------+---------------------+
| FDRE       | 6880 |        Flop & Latch |
| LUT6       | 2961 |                 LUT |
| LUT4       | 1402 |                 LUT |
| LUT5       | 1288 |                 LUT |
| LUT3       | 1121 |                 LUT |
| LUT2       | 1054 |                 LUT |
| CARRY4     |  612 |          CarryLogic |
| MUXF7      |  389 |               MuxFx |
| RAMD32     |  384 |  Distributed Memory |
| LUT1       |  218 |                 LUT |
| RAMS32     |  128 |  Distributed Memory |
| MUXF8      |   97 |               MuxFx |
| FDSE       |   94 |        Flop & Latch |
| DSP48E1    |   77 |    Block Arithmetic |
| SRL16E     |   60 |  Distributed Memory |
| OSERDESE2  |   43 |                  IO |
| FDPE       |   38 |        Flop & Latch |
| OBUF       |   33 |                  IO |
| RAMB36E1   |   27 |        Block Memory |
| IBUF       |   19 |                  IO |
| OBUFT      |   16 |                  IO |
| ISERDESE2  |   16 |                  IO |
| IDELAYE2   |   16 |                  IO |
| SRLC32E    |   12 |  Distributed Memory |
| BUFG       |    4 |               Clock |
| OBUFTDS    |    2 |                  IO |
| RAMB18E1   |    1 |        Block Memory |
| OBUFDS     |    1 |                  IO |
| MMCME2_ADV |    1 |               Clock |
| IDELAYCTRL |    1 |                  IO |
+------------+------+---------------------+


9. Black Boxes
--------------

+----------+------+
| Ref Name | Used |
+----------+------+


10. Instantiated Netlists
-------------------------

+----------+------+
| Ref Name | Used |
+----------+------+


"""

#: Vivado 2019.1, engine at 100 MHz, failed: ``mmcm_sync`` setup WNS -0.842 ns.
TIMING_A35T_2019_FAILED = """\
Copyright 1986-2019 Xilinx, Inc. All Rights Reserved.
-------------------------------------------------------------------------------------
| Tool Version : Vivado v.2019.1 (lin64) Build 2552052 Fri May 24 14:47:09 MDT 2019
| Date         : Thu Jan 16 09:52:40 2020
| Host         : buildhost running 64-bit Ubuntu 18.04.3 LTS
| Command      : report_timing_summary -datasheet -max_paths 10 -file top_timing.rpt
| Design       : top
| Device       : 7a35ti-csg324
| Speed File   : -1L  PRODUCTION 1.23 2018-06-13
-------------------------------------------------------------------------------------

Timing Summary Report

------------------------------------------------------------------------------------------------
| Timer Settings
| --------------
------------------------------------------------------------------------------------------------

  Enable Multi Corner Analysis               :  Yes
  Enable Pessimism Removal                   :  Yes
  Pessimism Removal Resolution               :  Nearest Common Node
  Enable Input Delay Default Clock           :  No
  Enable Preset / Clear Arcs                 :  No
  Disable Flight Delays                      :  No
  Ignore I/O Paths                           :  No
  Timing Early Launch at Borrowing Latches   :  No
  Borrow Time for Max Delay Exceptions       :  Yes

  Corner  Analyze    Analyze    
  Name    Max Paths  Min Paths  
  ------  ---------  ---------  
  Slow    Yes        Yes        
  Fast    Yes        Yes        



check_timing report

Table of Contents
-----------------
1. checking no_clock
2. checking constant_clock
3. checking pulse_width_clock
4. checking unconstrained_internal_endpoints
5. checking no_input_delay
6. checking no_output_delay
7. checking multiple_clock
8. checking generated_clocks
9. checking loops
10. checking partial_input_delay
11. checking partial_output_delay
12. checking latch_loops

1. checking no_clock
--------------------
 There are 0 register/latch pins with no clock.


2. checking constant_clock
--------------------------
 There are 0 register/latch pins with constant_clock.


3. checking pulse_width_clock
-----------------------------
 There are 0 register/latch pins which need pulse_width check


4. checking unconstrained_internal_endpoints
--------------------------------------------
 There are 0 pins that are not constrained for maximum delay.

 There are 0 pins that are not constrained for maximum delay due to constant clock.


5. checking no_input_delay
--------------------------
 There are 3 input ports with no input delay specified. (HIGH)

 There are 0 input ports with no input delay but user has a false path constraint.


6. checking no_output_delay
---------------------------
 There are 33 ports with no output delay specified. (HIGH)

 There are 0 ports with no output delay but user has a false path constraint

 There are 0 ports with no output delay but with a timing clock defined on it or propagating through it


7. checking multiple_clock
--------------------------
 There are 0 register/latch pins with multiple clocks.


8. checking generated_clocks
----------------------------
 There are 0 generated clocks that are not connected to a clock source.


9. checking loops
-----------------
 There are 0 combinational loops in the design.


10. checking partial_input_delay
--------------------------------
 There are 0 input ports with partial input delay specified.


11. checking partial_output_delay
---------------------------------
 There are 0 ports with partial output delay specified.


12. checking latch_loops
------------------------
 There are 0 combinational latch loops in the design through latch input



------------------------------------------------------------------------------------------------
| Design Timing Summary
| ---------------------
------------------------------------------------------------------------------------------------

    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints     WPWS(ns)     TPWS(ns)  TPWS Failing Endpoints  TPWS Total Endpoints  
    -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------     --------     --------  ----------------------  --------------------  
     -0.842      -37.513                    118                24310        0.038        0.000                      0                24310        2.845        0.000                       0                  7391  


Timing constraints are not met.


------------------------------------------------------------------------------------------------
| Clock Summary
| -------------
------------------------------------------------------------------------------------------------

Clock              Waveform(ns)        Period(ns)      Frequency(MHz)
-----              ------------        ----------      --------------
clk100_0__io       {0.000 5.000}       10.000          100.000         
  mmcm_fb          {0.000 5.000}       10.000          100.000         
  mmcm_idelay_ref  {0.000 2.500}       5.000           200.000         
  mmcm_sync        {0.000 5.000}       10.000          100.000         
  mmcm_sys2x       {0.000 2.500}       5.000           200.000         
  mmcm_sys2x_90    {1.250 3.750}       5.000           200.000         


------------------------------------------------------------------------------------------------
| Intra Clock Table
| -----------------
------------------------------------------------------------------------------------------------

Clock                  WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints     WPWS(ns)     TPWS(ns)  TPWS Failing Endpoints  TPWS Total Endpoints  
-----                  -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------     --------     --------  ----------------------  --------------------  
clk100_0__io                                                                                                                                                         3.000        0.000                       0                     1  
  mmcm_fb                                                                                                                                                            8.751        0.000                       0                     2  
  mmcm_idelay_ref                                                                                                                                                    2.845        0.000                       0                     2  
  mmcm_sync             -0.842      -37.513                    118                24210        0.038        0.000                      0                24210        3.750        0.000                       0                  7312  
  mmcm_sys2x             2.634        0.000                      0                   36        0.118        0.000                      0                   36        2.845        0.000                       0                    68  
  mmcm_sys2x_90                                                                                                                                                      3.249        0.000                       0                     6  


------------------------------------------------------------------------------------------------
| Inter Clock Table
| -----------------
------------------------------------------------------------------------------------------------

From Clock    To Clock          WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints  
----------    --------          -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------  
mmcm_sync     mmcm_sys2x          0.957        0.000                      0                   48        0.091        0.000                      0                   48  
mmcm_sys2x    mmcm_sync           2.187        0.000                      0                   16        0.170        0.000                      0                   16  


------------------------------------------------------------------------------------------------
| Other Path Groups Table
| -----------------------
------------------------------------------------------------------------------------------------

Path Group    From Clock    To Clock          WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints  
----------    ----------    --------          -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------  


------------------------------------------------------------------------------------------------
| Timing Details
| --------------
------------------------------------------------------------------------------------------------


---------------------------------------------------------------------------------------------------
From Clock:  clk100_0__io
  To Clock:  clk100_0__io

Setup :           NA  Failing Endpoints,  Worst Slack           NA  ,  Total Violation           NA
Hold  :           NA  Failing Endpoints,  Worst Slack           NA  ,  Total Violation           NA
PW    :            0  Failing Endpoints,  Worst Slack        3.000ns,  Total Violation        0.000ns
---------------------------------------------------------------------------------------------------


---------------------------------------------------------------------------------------------------
From Clock:  mmcm_sync
  To Clock:  mmcm_sync

Setup :          118  Failing Endpoints,  Worst Slack       -0.842ns,  Total Violation      -37.513ns
Hold  :            0  Failing Endpoints,  Worst Slack        0.038ns,  Total Violation        0.000ns
PW    :            0  Failing Endpoints,  Worst Slack        3.750ns,  Total Violation        0.000ns
---------------------------------------------------------------------------------------------------


Max Delay Paths
--------------------------------------------------------------------------------------
Slack (VIOLATED) :        -0.842ns  (required time - arrival time)
  Source:                 engine/array/acc_reg[3][5][17]/C
                            (rising edge-triggered cell FDRE clocked by mmcm_sync  {rise@0.000ns fall@5.000ns period=10.000ns})
  Destination:            engine/requant/lane0/prod_reg/A[17]
                            (rising edge-triggered cell DSP48E1 clocked by mmcm_sync  {rise@0.000ns fall@5.000ns period=10.000ns})
  Path Group:             mmcm_sync
  Path Type:              Setup (Max at Slow Process Corner)
  Requirement:            10.000ns  (mmcm_sync rise@10.000ns - mmcm_sync rise@0.000ns)
  Data Path Delay:        10.561ns  (logic 4.312ns (40.829%)  route 6.249ns (59.171%))
  Logic Levels:           9  (CARRY4=5 LUT3=1 LUT5=1 LUT6=2)
"""

#: Vivado 2024.1, xc7a100ti: 28.5 block RAM tiles.
UTIL_A100T_2024 = """\
Copyright 1986-2022 Xilinx, Inc. All Rights Reserved. Copyright 2022-2024 Advanced Micro Devices, Inc. All Rights Reserved.
---------------------------------------------------------------------------------------------------------------------------------------------
| Tool Version : Vivado v.2024.1 (lin64) Build 5076996 Wed May 22 18:36:09 MDT 2024
| Date         : Fri Nov 15 22:18:05 2024
| Host         : buildhost running 64-bit Ubuntu 24.04.1 LTS
| Command      : report_utilization -file top_utilization_place.rpt
| Design       : top
| Device       : xc7a100ticsg324-1L
| Speed File   : -1L
| Design State : Fully Placed
---------------------------------------------------------------------------------------------------------------------------------------------

Utilization Design Information

Table of Contents
-----------------
1. Slice Logic
1.1 Summary of Registers by Type
2. Slice Logic Distribution
3. Memory
4. DSP
5. IO and GT Specific
6. Clocking
7. Specific Feature
8. Primitives
9. Black Boxes
10. Instantiated Netlists

1. Slice Logic
--------------

+----------------------------+------+-------+------------+-----------+-------+
|          Site Type         | Used | Fixed | Prohibited | Available | Util% |
+----------------------------+------+-------+------------+-----------+-------+
| Slice LUTs                 | 8210 |     0 |          0 |     63400 | 12.95 |
|   LUT as Logic             | 7882 |     0 |          0 |     63400 | 12.43 |
|   LUT as Memory            |  328 |     0 |          0 |     19000 |  1.73 |
|     LUT as Distributed RAM |  256 |     0 |            |           |       |
|     LUT as Shift Register  |   72 |     0 |            |           |       |
| Slice Registers            | 7046 |     0 |          0 |    126800 |  5.56 |
|   Register as Flip Flop    | 7046 |     0 |          0 |    126800 |  5.56 |
|   Register as Latch        |    0 |     0 |          0 |    126800 |  0.00 |
| F7 Muxes                   |  391 |     0 |          0 |     31700 |  1.23 |
| F8 Muxes                   |   97 |     0 |          0 |     15850 |  0.61 |
+----------------------------+------+-------+------------+-----------+-------+
* Warning! LUT value is adjusted to account for LUT combining.


1.1 Summary of Registers by Type
--------------------------------

+-------+--------------+-------------+--------------+
| Total | Clock Enable | Synchronous | Asynchronous |
+-------+--------------+-------------+--------------+
| 0     |            _ |           - |            - |
| 0     |            _ |           - |          Set |
| 0     |            _ |           - |        Reset |
| 0     |            _ |         Set |            - |
| 0     |            _ |       Reset |            - |
| 0     |          Yes |           - |            - |
| 38    |          Yes |           - |          Set |
| 0     |          Yes |           - |        Reset |
| 94    |          Yes |         Set |            - |
| 6914  |          Yes |       Reset |            - |
+-------+--------------+-------------+--------------+


2. Slice Logic Distribution
---------------------------

+--------------------------------------------+------+-------+------------+-----------+-------+
|                  Site Type                 | Used | Fixed | Prohibited | Available | Util% |
+--------------------------------------------+------+-------+------------+-----------+-------+
| Slice                                      | 2731 |     0 |          0 |     15850 | 17.23 |
|   SLICEL                                   | 1841 |     0 |            |           |       |
|   SLICEM                                   |  890 |     0 |            |           |       |
| LUT as Logic                               | 7882 |     0 |          0 |     63400 | 12.43 |
|   using O5 output only                     |    0 |       |            |           |       |
|   using O6 output only                     | 6502 |       |            |           |       |
|   using O5 and O6                          | 1380 |       |            |           |       |
| LUT as Memory                              |  328 |     0 |          0 |     19000 |  1.73 |
|   LUT as Distributed RAM                   |  256 |     0 |            |           |       |
|     using O5 output only                   |    0 |       |            |           |       |
|     using O6 output only                   |    0 |       |            |           |       |
|     using O5 and O6                        |  256 |       |            |           |       |
|   LUT as Shift Register                    |   72 |     0 |            |           |       |
|     using O5 output only                   |    4 |       |            |           |       |
|     using O6 output only                   |   60 |       |            |           |       |
|     using O5 and O6                        |    8 |       |            |           |       |
| Slice Registers                            | 7046 |     0 |          0 |    126800 |  5.56 |
|   Register driven from within the Slice    | 3502 |       |            |           |       |
|   Register driven from outside the Slice   | 3544 |       |            |           |       |
|     LUT in front of the register is unused | 2097 |       |            |           |       |
|     LUT in front of the register is used   | 1447 |       |            |           |       |
| Unique Control Sets                        |  214 |       |          0 |     15850 |  1.35 |
+--------------------------------------------+------+-------+------------+-----------+-------+
* * Note: Available Control Sets calculated as Slice * 1, Review the Control Sets Report for more information regarding control sets.


3. Memory
---------

+-------------------+------+-------+------------+-----------+-------+
|     Site Type     | Used | Fixed | Prohibited | Available | Util% |
+-------------------+------+-------+------------+-----------+-------+
| Block RAM Tile    | 28.5 |     0 |          0 |       135 | 21.11 |
|   RAMB36/FIFO*    |   28 |     0 |          0 |       135 | 20.74 |
|     RAMB36E1 only |   28 |       |            |           |       |
|   RAMB18          |    1 |     0 |          0 |       270 |  0.37 |
|     RAMB18E1 only |    1 |       |            |           |       |
+-------------------+------+-------+------------+-----------+-------+
* Note: Each Block RAM Tile only has one FIFO logic available and therefore can accommodate only one FIFO36E1 or one FIFO18E1. However, if a FIFO18E1 occupies a Block RAM Tile, that tile can still accommodate a RAMB18E1


4. DSP
------

+----------------+------+-------+------------+-----------+-------+
|    Site Type   | Used | Fixed | Prohibited | Available | Util% |
+----------------+------+-------+------------+-----------+-------+
| DSPs           |   77 |     0 |          0 |       240 | 32.08 |
|   DSP48E1 only |   77 |       |            |           |       |
+----------------+------+-------+------------+-----------+-------+


5. IO and GT Specific
---------------------

+-----------------------------+------+-------+------------+-----------+-------+
|          Site Type          | Used | Fixed | Prohibited | Available | Util% |
+-----------------------------+------+-------+------------+-----------+-------+
| Bonded IOB                  |   55 |    55 |          0 |       210 | 26.19 |
|   IOB Master Pads           |   27 |       |            |           |       |
|   IOB Slave Pads            |   26 |       |            |           |       |
| Bonded IPADs                |    0 |     0 |          0 |         2 |  0.00 |
| PHY_CONTROL                 |    0 |     0 |          0 |         6 |  0.00 |
| PHASER_REF                  |    0 |     0 |          0 |         6 |  0.00 |
| OUT_FIFO                    |    0 |     0 |          0 |        24 |  0.00 |
| IN_FIFO                     |    0 |     0 |          0 |        24 |  0.00 |
| IDELAYCTRL                  |    1 |     0 |          0 |         6 | 16.67 |
| IBUFDS                      |    0 |     0 |          0 |       202 |  0.00 |
| PHASER_OUT/PHASER_OUT_PHY   |    0 |     0 |          0 |        24 |  0.00 |
| PHASER_IN/PHASER_IN_PHY     |    0 |     0 |          0 |        24 |  0.00 |
| IDELAYE2/IDELAYE2_FINEDELAY |   16 |    16 |          0 |       300 |  5.33 |
|   IDELAYE2 only             |   16 |    16 |            |           |       |
| ILOGIC                      |   16 |    16 |          0 |       210 |  7.62 |
|   ISERDES                   |   16 |    16 |            |           |       |
| OLOGIC                      |   43 |    43 |          0 |       210 | 20.48 |
|   OSERDES                   |   43 |    43 |            |           |       |
+-----------------------------+------+-------+------------+-----------+-------+


6. Clocking
-----------

+------------+------+-------+------------+-----------+-------+
|  Site Type | Used | Fixed | Prohibited | Available | Util% |
+------------+------+-------+------------+-----------+-------+
| BUFGCTRL   |    4 |     0 |          0 |        32 | 12.50 |
| BUFIO      |    0 |     0 |          0 |        24 |  0.00 |
| MMCME2_ADV |    1 |     0 |          0 |         6 | 16.67 |
| PLLE2_ADV  |    0 |     0 |          0 |         6 |  0.00 |
| BUFMRCE    |    0 |     0 |          0 |        12 |  0.00 |
| BUFHCE     |    0 |     0 |          0 |        96 |  0.00 |
| BUFR       |    0 |     0 |          0 |        24 |  0.00 |
+------------+------+-------+------------+-----------+-------+


7. Specific Feature
-------------------

+-------------+------+-------+------------+-----------+-------+
|  Site Type  | Used | Fixed | Prohibited | Available | Util% |
+-------------+------+-------+------------+-----------+-------+
| BSCANE2     |    0 |     0 |          0 |         4 |  0.00 |
| CAPTUREE2   |    0 |     0 |          0 |         1 |  0.00 |
| DNA_PORT    |    0 |     0 |          0 |         1 |  0.00 |
| EFUSE_USR   |    0 |     0 |          0 |         1 |  0.00 |
| FRAME_ECCE2 |    0 |     0 |          0 |         1 |  0.00 |
| ICAPE2      |    0 |     0 |          0 |         2 |  0.00 |
| PCIE_2_1    |    0 |     0 |          0 |         1 |  0.00 |
| STARTUPE2   |    0 |     0 |          0 |         1 |  0.00 |
| XADC        |    0 |     0 |          0 |         1 |  0.00 |
+-------------+------+-------+------------+-----------+-------+


8. Primitives
-------------

+------------+------+---------------------+
|  Ref Name  | Used | Functional Category |
+------------+------+---------------------+
| FDRE       | 6880 |        Flop & Latch |
| LUT6       | 2961 |                 LUT |
| LUT4       | 1402 |                 LUT |
| LUT5       | 1288 |                 LUT |
| LUT3       | 1121 |                 LUT |
| LUT2       | 1054 |                 LUT |
| CARRY4     |  612 |          CarryLogic |
| MUXF7      |  389 |               MuxFx |
| RAMD32     |  384 |  Distributed Memory |
| LUT1       |  218 |                 LUT |
| RAMS32     |  128 |  Distributed Memory |
| MUXF8      |   97 |               MuxFx |
| FDSE       |   94 |        Flop & Latch |
| DSP48E1    |   77 |    Block Arithmetic |
| SRL16E     |   60 |  Distributed Memory |
| OSERDESE2  |   43 |                  IO |
| FDPE       |   38 |        Flop & Latch |
| OBUF       |   33 |                  IO |
| RAMB36E1   |   28 |        Block Memory |
| IBUF       |   19 |                  IO |
| OBUFT      |   16 |                  IO |
| ISERDESE2  |   16 |                  IO |
| IDELAYE2   |   16 |                  IO |
| SRLC32E    |   12 |  Distributed Memory |
| BUFG       |    4 |               Clock |
| OBUFTDS    |    2 |                  IO |
| RAMB18E1   |    1 |        Block Memory |
| OBUFDS     |    1 |                  IO |
| MMCME2_ADV |    1 |               Clock |
| IDELAYCTRL |    1 |                  IO |
+------------+------+---------------------+


9. Black Boxes
--------------

+----------+------+
| Ref Name | Used |
+----------+------+


10. Instantiated Netlists
-------------------------

+----------+------+
| Ref Name | Used |
+----------+------+


"""

#: Vivado 2024.1, engine at 80 MHz (DRAM 160 MHz): every clock's own paths meet their target, but a
#: ``mmcm_sync`` -> ``mmcm_sys2x`` path fails (Inter Clock Table), so the verdict is not met.
TIMING_A100T_2024_FAILED = """\
Copyright 1986-2022 Xilinx, Inc. All Rights Reserved. Copyright 2022-2024 Advanced Micro Devices, Inc. All Rights Reserved.
---------------------------------------------------------------------------------------------------------------------------------------------
| Tool Version : Vivado v.2024.1 (lin64) Build 5076996 Wed May 22 18:36:09 MDT 2024
| Date         : Fri Nov 15 22:31:44 2024
| Host         : buildhost running 64-bit Ubuntu 24.04.1 LTS
| Command      : report_timing_summary -datasheet -max_paths 10 -file top_timing.rpt
| Design       : top
| Device       : 7a100ti-csg324
| Speed File   : -1L  PRODUCTION 1.23 2018-06-13
| Design State : Routed
---------------------------------------------------------------------------------------------------------------------------------------------

Timing Summary Report

------------------------------------------------------------------------------------------------
| Timer Settings
| --------------
------------------------------------------------------------------------------------------------

  Enable Multi Corner Analysis               :  Yes
  Enable Pessimism Removal                   :  Yes
  Pessimism Removal Resolution               :  Nearest Common Node
  Enable Input Delay Default Clock           :  No
  Enable Preset / Clear Arcs                 :  No
  Disable Flight Delays                      :  No
  Ignore I/O Paths                           :  No
  Timing Early Launch at Borrowing Latches   :  No
  Borrow Time for Max Delay Exceptions       :  Yes
  Merge Timing Exceptions                    :  Yes
  Inter-SLR Compensation                     :  Conservative

  Corner  Analyze    Analyze    
  Name    Max Paths  Min Paths  
  ------  ---------  ---------  
  Slow    Yes        Yes        
  Fast    Yes        Yes        


------------------------------------------------------------------------------------------------
| Report Methodology
| ------------------
------------------------------------------------------------------------------------------------

Rule       Severity          Description                                  Violations  
---------  ----------------  -------------------------------------------  ----------  
TIMING-18  Warning           Missing input or output delay                24          
LUTAR-1    Warning           LUT drives async reset alert                 2           

Note: This report is based on the most recent report_methodology run and may not be up-to-date. Run report_methodology on the current design for the latest report.




check_timing report

Table of Contents
-----------------
1. checking no_clock (0)
2. checking constant_clock (0)
3. checking pulse_width_clock (0)
4. checking unconstrained_internal_endpoints (0)
5. checking no_input_delay (3)
6. checking no_output_delay (33)
7. checking multiple_clock (0)
8. checking generated_clocks (0)
9. checking loops (0)
10. checking partial_input_delay (0)
11. checking partial_output_delay (0)
12. checking latch_loops (0)

1. checking no_clock (0)
------------------------
 There are 0 register/latch pins with no clock.


2. checking constant_clock (0)
------------------------------
 There are 0 register/latch pins with constant_clock.


3. checking pulse_width_clock (0)
---------------------------------
 There are 0 register/latch pins which need pulse_width check


4. checking unconstrained_internal_endpoints (0)
------------------------------------------------
 There are 0 pins that are not constrained for maximum delay.

 There are 0 pins that are not constrained for maximum delay due to constant clock.


5. checking no_input_delay (3)
------------------------------
 There are 3 input ports with no input delay specified. (HIGH)

 There are 0 input ports with no input delay but user has a false path constraint.


6. checking no_output_delay (33)
--------------------------------
 There are 33 ports with no output delay specified. (HIGH)

 There are 0 ports with no output delay but user has a false path constraint

 There are 0 ports with no output delay but with a timing clock defined on it or propagating through it


7. checking multiple_clock (0)
------------------------------
 There are 0 register/latch pins with multiple clocks.


8. checking generated_clocks (0)
--------------------------------
 There are 0 generated clocks that are not connected to a clock source.


9. checking loops (0)
---------------------
 There are 0 combinational loops in the design.


10. checking partial_input_delay (0)
------------------------------------
 There are 0 input ports with partial input delay specified.


11. checking partial_output_delay (0)
-------------------------------------
 There are 0 ports with partial output delay specified.


12. checking latch_loops (0)
----------------------------
 There are 0 combinational latch loops in the design through latch input



------------------------------------------------------------------------------------------------
| Design Timing Summary
| ---------------------
------------------------------------------------------------------------------------------------

    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints     WPWS(ns)     TPWS(ns)  TPWS Failing Endpoints  TPWS Total Endpoints  
    -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------     --------     --------  ----------------------  --------------------  
     -0.214       -1.518                      9                24331        0.041        0.000                      0                24331        2.845        0.000                       0                  7397  


Timing constraints are not met.


------------------------------------------------------------------------------------------------
| Clock Summary
| -------------
------------------------------------------------------------------------------------------------

Clock              Waveform(ns)        Period(ns)      Frequency(MHz)
-----              ------------        ----------      --------------
clk100_0__io       {0.000 5.000}       10.000          100.000         
  mmcm_fb          {0.000 5.000}       10.000          100.000         
  mmcm_idelay_ref  {0.000 2.500}       5.000           200.000         
  mmcm_sync        {0.000 6.250}       12.500          80.000          
  mmcm_sys2x       {0.000 3.125}       6.250           160.000         
  mmcm_sys2x_90    {1.563 4.688}       6.250           160.000         


------------------------------------------------------------------------------------------------
| Intra Clock Table
| -----------------
------------------------------------------------------------------------------------------------

Clock                  WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints     WPWS(ns)     TPWS(ns)  TPWS Failing Endpoints  TPWS Total Endpoints  
-----                  -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------     --------     --------  ----------------------  --------------------  
clk100_0__io                                                                                                                                                         3.000        0.000                       0                     1  
  mmcm_fb                                                                                                                                                            8.751        0.000                       0                     2  
  mmcm_idelay_ref                                                                                                                                                    2.845        0.000                       0                     2  
  mmcm_sync              1.187        0.000                      0                24203        0.041        0.000                      0                24203        5.000        0.000                       0                  7318  
  mmcm_sys2x             3.102        0.000                      0                   36        0.124        0.000                      0                   36        4.095        0.000                       0                    68  
  mmcm_sys2x_90                                                                                                                                                      4.499        0.000                       0                     6  


------------------------------------------------------------------------------------------------
| Inter Clock Table
| -----------------
------------------------------------------------------------------------------------------------

From Clock    To Clock           WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints  
----------    --------           -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------  
mmcm_sync     mmcm_sys2x          -0.214       -1.518                      9                   48        0.079        0.000                      0                   48  
mmcm_sys2x    mmcm_sync            2.931        0.000                      0                   16        0.166        0.000                      0                   16  
mmcm_sync     mmcm_sys2x_90        1.344        0.000                      0                   28        0.202        0.000                      0                   28  


------------------------------------------------------------------------------------------------
| Other Path Groups Table
| -----------------------
------------------------------------------------------------------------------------------------

Path Group    From Clock    To Clock          WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints  
----------    ----------    --------          -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------  


------------------------------------------------------------------------------------------------
| User Ignored Path Table
| -----------------------
------------------------------------------------------------------------------------------------

Path Group                     From Clock To Clock   
----------                     ---------- --------   
(none)                         mmcm_sync             
(none)                                    mmcm_sync  
(none)                         mmcm_sync  mmcm_sync  


------------------------------------------------------------------------------------------------
| Timing Details
| --------------
------------------------------------------------------------------------------------------------


---------------------------------------------------------------------------------------------------
From Clock:  clk100_0__io
  To Clock:  clk100_0__io

Setup :           NA  Failing Endpoints,  Worst Slack           NA  ,  Total Violation           NA
Hold  :           NA  Failing Endpoints,  Worst Slack           NA  ,  Total Violation           NA
PW    :            0  Failing Endpoints,  Worst Slack        3.000ns,  Total Violation        0.000ns
---------------------------------------------------------------------------------------------------


---------------------------------------------------------------------------------------------------
From Clock:  mmcm_sync
  To Clock:  mmcm_sync

Setup :            0  Failing Endpoints,  Worst Slack        1.187ns,  Total Violation        0.000ns
Hold  :            0  Failing Endpoints,  Worst Slack        0.041ns,  Total Violation        0.000ns
PW    :            0  Failing Endpoints,  Worst Slack        5.000ns,  Total Violation        0.000ns
---------------------------------------------------------------------------------------------------

"""
