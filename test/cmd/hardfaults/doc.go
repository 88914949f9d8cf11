// Command hardfaults runs issue 15's single-guest hard faults against a
// LUN served from a replicated micro Ceph (test/micro-ceph.sh with OSDS=3:
// pool size 3, min_size 2), each under a verifying write load, and measures
// what the initiator lived through:
//
//	osd-sigkill     one OSD SIGKILLed, restarted later
//	below-min-size  two OSDs SIGKILLed (the pool below min_size: I/O must
//	                block, not fail), one restarted, then the other
//	mon-sigkill     the only monitor SIGKILLed, restarted later
//	osd-freeze      every OSD SIGSTOPped longer than osd_op_timeout, then
//	                SIGCONTed
//
// For each it runs `ackwriter write` on a region of its own (ackwriter
// proves that every acknowledged write is still there), follows the
// writer's ack log ten times a second, and reports: the writes per second
// before the fault; the longest time no write was acknowledged; when the
// rate was back to full speed (3/4 of the rate before, over 5 s); what the
// initiator saw (write errors returned to ackwriter, SCSI completions other
// than GOOD and midlayer timeouts from the disk's counters in sysfs, kernel
// log lines); what
// gotcmu answered (gotcmu_status_total by status); and ackwriter verify's
// count of lost writes. Every fault is bounded: a writer that does not
// recover, a cluster that does not come back, is a FAIL with the time it
// was given, never a hang of the suite.
//
// Results go to stdout as the guest suites print them ("PASS name",
// "FAIL name: why"), appended to -summary; one "FAULT name: ..." line per
// figure to stdout and -figures. Exit status: 0 every check passed, 1 a
// check failed, 2 bad usage.
//
// Shell only boots the guest, starts the cluster and exports the LUN
// (test/vm/guest-faults.sh); the faults and their checks are here.
package main
