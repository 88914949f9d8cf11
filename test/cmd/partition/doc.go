// Command partition runs issue 15 point 1's partition in the two-guest
// layout (test/ha/guest-partition.sh) and decides PASS or FAIL: gateway A is
// cut off from the Ceph cluster while the initiator's dm-multipath moves to
// gateway B, and reconnected later. It runs on guest b, beside the
// initiator, Ceph and gateway B; guest a, where gateway A runs alone, makes
// the cut and the restore when told to (HTTP flags, test/vm/lib-pair.sh).
//
// The scenario, under `ackwriter write` on the multipath device:
//
//  1. before the cut every write goes through A's path and A holds the
//     image's exclusive lock;
//  2. the cut: A's librbd operations time out, A takes its TPG offline,
//     dm-multipath moves the I/O to B, B breaks A's lock (Ceph blocklists
//     A's client) and takes it; writes resume;
//  3. the restore: A reconnects with a fresh client, brings its TPG back
//     and, because B took its lock, refuses writes for its hold-down
//     (NOT READY, TARGET PORT IN STANDBY) rather than taking the lock back.
//     dm-multipath alone would send nothing to A during the hold-down
//     (Ceph's stanza fails back after 60 s), so the scenario switches the
//     map to A's path group as soon as A's path is back, as an initiator
//     with immediate failback (or stale I/O retried on the old path) would;
//  4. ackwriter verify: every acknowledged write is still there, and no
//     write that failed landed over a later one.
//
// What it measures: the longest time without an acknowledged write at the
// cut and after the restore, when the write rate was back to full speed
// (3/4 of the rate before the cut, over 5 s), the write errors ackwriter
// got, the initiator's kernel log, multipath's path states, A's TPG state,
// where the lock was (rbd lock ls) and when each gateway took it (their
// gotcmu logs), what each gotcmu answered (its metrics).
//
// Results go to stdout as the guest suites print them ("PASS name",
// "FAIL name: why"), appended to -summary; figures ("PARTITION ...") to
// stdout and -figures. Exit status: 0 every check passed, 1 a check
// failed, 2 bad usage.
package main
