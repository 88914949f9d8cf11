// Command procstat prints one snapshot of what the kernel has accounted to a
// process and to a block device, as JSON; two snapshots taken around a fio
// run give the handler's cost per IO (test/bench/guest-bench.sh takes them,
// test/cmd/benchreport subtracts them).
//
//	procstat [-pid PID] [-dev NAME] [-hz TICKS] [-root DIR]
//
// For -pid: utime and stime from /proc/PID/stat, in clock ticks (-hz, the
// USER_HZ of `getconf CLK_TCK`, 100 by default, is written beside them),
// which cover every thread of the process, the ones that have exited
// included; and for each live thread (/proc/PID/task/TID) its voluntary and
// involuntary context switches (status) and its run time in ns
// (schedstat, when the kernel has it). The kernel keeps the context switches
// of exited threads only in the process-wide rusage its parent gets from
// wait4: no /proc file holds them. So a thread that exits between two
// snapshots takes its switches with it; benchreport counts such threads and
// says so. For -dev: the read, write, discard and flush requests the device
// has completed (/sys/block/NAME/stat).
//
// Output, one line:
//
//	{"pid": 812, "hz": 100, "utime": 1520, "stime": 3311,
//	 "tasks": {"812": {"vcsw": 12, "ivcsw": 3, "run_ns": 40123}, ...},
//	 "dev": "sdb", "dev_ios": {"read": 10233, "write": 4096, "discard": 0, "flush": 0},
//	 "time_us": 1764892800123456}
//
// -root (default /) prefixes /proc and /sys, for the tests.
package main
