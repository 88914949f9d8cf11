// Command benchreport turns the fio results of one `make bench` guest boot
// (test/bench/guest-bench.sh: DIR/<lun>/<row>.json) into the issue 7 table:
// markdown with the ratios beside each row, and a data file plus gnuplot
// script for the chart of those ratios.
//
//	benchreport [-md FILE] [-dat FILE] [-gp FILE -png FILE] [-host FILE] DIR
//
// Three tables, one per comparison: Ceph RBD (gotcmu user:rbd, tcmu-runner
// user:rbd, fio's librbd engine), RAM (gotcmu user:mem, LIO rd_mcp) and a
// file on tmpfs (gotcmu user:file, LIO fileio, and tcmu-runner's file_zbc
// when it served random writes). 4 KiB rows give IOPS and, at queue depth
// 1, the mean latency; 1 MiB rows give MB/s. A missing result prints as
// "-" and its ratio as "n/a", never as zero. -host appends the host
// benchmark's table (test/bench/host-rbd.sh) as it is.
//
// The markdown goes to stdout as well as to -md.
package main
