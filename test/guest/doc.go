// Package guest holds the checks of the guest suites that grew past
// driving tools: make test-faults (faults_test.go) and make test-ha
// (ha_test.go). They are Go tests behind the build tag "guest", compiled
// on the host (go test -c -tags guest, by test/vm/test-vm.sh and
// test/ha/test-ha.sh) and run as root inside a guest booted by
// test/vm/run-guest.sh; each check is a subtest whose failure says why.
// The guest scripts (test/vm/guest-faults.sh, test/ha/guest-ha.sh) only
// boot, hand over the environment and turn the test events into the
// suite's summary lines (test/cmd/testsummary).
//
// The files without the tag hold what the checks decide with: parsers of
// /proc, Prometheus text, ackwriter's and sg_raw's output, multipathd's
// topology and gotcmu's log. Their tests run on the host in make
// test-unit; nothing here touches the host's kernel outside a guest.
package guest
