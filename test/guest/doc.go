// Package guest holds, as Go tests, the checks of the guest suites whose
// scripts grew test logic of their own: make test-faults (TestFaults in
// faults_test.go and the files beside it) and make test-ha (TestHA in
// ha_test.go). They build only with the tag guest: test/guest/build.sh
// builds guest.test, with test2json and test/cmd/testsummary, which turns
// the test events into the suites' PASS/FAIL/SKIP summary lines. They run
// as root inside a guest booted by test/vm/run-guest.sh, handed their
// environment by the suite's script (REPO, GOTCMU, ACKWRITER, ...); each
// check is a subtest whose failure says why, and a skip says why too.
//
// The files without the tag hold what the checks decide with: parsers of
// /proc, Prometheus text, ackwriter's and sg_raw's output, rbd info, block
// statistics and gotcmu's JSON log. Their tests run on the host in make
// test-unit; nothing here touches the host's kernel outside a guest.
package guest
