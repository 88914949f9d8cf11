// Command soakreport decides whether a soak run's resource series are flat:
// for each series of a samples file it fits a least-squares line to the
// samples of the last half of the run and fails when the slope, per hour,
// exceeds the series' bound (issue 15 point 4; test/soak/guest-soak.sh
// writes the samples and runs it in the guest).
//
//	soakreport [-run SECS] [-min-samples N] [-md FILE] [bounds] SAMPLES
//
// SAMPLES is whitespace-separated text: a header line naming the columns,
// the first of which is t_s (seconds since the load started), then one line
// per sample; "?" marks a value that could not be read (left out of that
// series' fit). Lines starting with '#' are comments.
//
// The last half is the samples with t_s >= run/2, run being -run (the
// length of the load) or, when it is 0, the last sample's t_s. A series
// with fewer than -min-samples values there is an error (exit 2): a slope
// over a handful of points says nothing.
//
// Bounds, per hour of run, for the columns of those names (other columns
// are fitted and printed, without a verdict):
//
//	-anon-mib        anon_mib: anonymous memory (RssAnon: the Go heap and
//	                 librbd's and librados's C heaps), MiB/h
//	-heap-mib        go_heap_mib: the Go heap in use, MiB/h
//	-goroutines      goroutines/h
//	-fds             open_fds: open file descriptors/h
//	-threads         threads: OS threads (/proc/PID/status Threads)/h
//
// It prints a table (series, the value at the start and the end of the last
// half as fitted, the slope per hour, the bound, the verdict) and, with -md,
// writes it as a Markdown table too. Exit status: 0 every bounded series
// within its bound, 1 one or more over, 2 a usage, input or sample-count
// error.
package main
