// Command benchreport turns the fio results of one `make bench` guest boot
// (test/bench/guest-bench.sh: DIR/<lun>/r<round>/<row>.json, or
// DIR/<lun>/<row>.json for a boot of one round) into the issue 7 table and
// the cost per IO of issue 13: markdown with the ratios beside each row,
// data files plus a gnuplot script for the chart of those ratios and the
// chart of the CPU time per IO.
//
//	benchreport [-md FILE] [-dat FILE] [-cpudat FILE] [-gp FILE -png FILE -cpupng FILE] [-host FILE] DIR
//
// Three sections, one per comparison: Ceph RBD (gotcmu user:rbd,
// tcmu-runner user:rbd, fio's librbd engine), RAM (gotcmu user:mem, LIO
// rd_mcp) and a file on tmpfs (gotcmu user:file, LIO fileio, and
// tcmu-runner's file_zbc when it served random writes). Each figure is the
// lowest-highest over the rounds; a ratio pairs the two LUNs of the same
// round. 4 KiB rows give IOPS and, at queue depth 1, the mean latency; 1 MiB
// rows give MB/s. A missing result prints as "-" and its ratio as "n/a",
// never as zero.
//
// The cost tables give, per row and handler, IOPS, MB/s, mean and p99
// latency, CPU µs per IO and context switches per IO. A daemon's cost is the
// difference of the test/cmd/procstat snapshots <row>.pre and <row>.post
// taken around the fio run (utime+stime of the whole process; context
// switches thread by thread, a thread gone by the second snapshot counted
// and reported, since its switches are lost); LIO's backstores have a
// snapshot of the disk only and cost zero. fio-rbd's is test/cmd/rusage's
// <row>.rusage of the whole fio process less setup-read.rusage or
// setup-write.rusage (fio doing one IO: connect, open, close). The IOs
// divided by are fio's total_ios when the boot's ramp (DIR/ramp) is 0, and
// the disk's completed requests otherwise (fio-rbd's cost is then n/a);
// the largest gap between the two counts in a window is reported.
// -host appends the host benchmark's table (test/bench/host-rbd.sh) as it is.
//
// The markdown goes to stdout as well as to -md.
package main
