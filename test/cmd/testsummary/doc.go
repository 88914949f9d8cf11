// Command testsummary turns the events of a Go test binary run in a guest
// (test/guest, through cmd/test2json) into the guest suites' summary
// lines, one per check:
//
//	test2json -p faults guest.test -test.v=test2json | testsummary -summary /out/summary.txt
//
// A check is a test or subtest without subtests of its own, or one that
// failed while none of its subtests did. Its line is "PASS name", "FAIL
// name: why" or "SKIP name: why"; name is the test's path without the
// top-level test, its parts joined by ": " and underscores read as
// spaces (t.Run("gotcmu still running") under "sigkill" is "sigkill:
// gotcmu still running"); why, and for a PASS the figures in brackets,
// are what the test logged. A test the binary started and never ended
// (a panic, -test.timeout) is a FAIL, and so is a binary that failed with
// no test failing.
//
// The test output itself goes to stdout as -test.v prints it, the
// summary lines too. Exit status: 0 when every check passed or was
// skipped and at least one passed, 1 otherwise, 2 bad usage.
package main
