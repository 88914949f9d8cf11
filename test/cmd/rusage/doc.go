// Command rusage runs a command, waits for it and writes the resource usage
// the kernel reports for it at wait4 as JSON: user and system CPU time,
// voluntary and involuntary context switches and the peak resident set. It
// is the whole process's figure, every thread included (also threads that
// exited before it), plus any children it waited for — for fio's librbd
// engine that is fio's job thread and all of librbd's and librados's
// threads, where fio's own usr_cpu/sys_cpu count the job thread only.
//
//	rusage -o FILE [--] COMMAND [ARG...]
//
// The command's stdin, stdout and stderr are rusage's; SIGINT and SIGTERM
// are passed on to it. rusage exits with the command's exit status (128+N
// when a signal N ended it) and writes FILE in every case the command ran;
// 2 when it could not be started.
//
// FILE, one JSON object:
//
//	{"utime_us": 812000, "stime_us": 240000, "nvcsw": 51234, "nivcsw": 812,
//	 "maxrss_kb": 120512, "start_us": 1764892800123456, "wall_us": 12034567, "exit": 0}
package main
