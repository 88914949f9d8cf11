// Command skipcheck reads `go test -json` on stdin and fails when a test
// or subtest was skipped that a list of expected skips does not name, so
// that no skip hides in `make test-unit` or `make test-ceph`.
//
//	go test -json ./... | skipcheck -allow test/expected-skips.txt [-log FILE] [-show REGEXP]
//
// It prints every skip, top-level and subtest alike, with the test's own
// reason (the last line it logged) and, for an expected one, the list's;
// a listed skip that did not happen, in a package that ran, is noted. The
// test output goes to FILE in full, as `go test -v` prints it. On stdout:
// with -show, the output lines that match REGEXP; without it, what plain
// `go test` prints (each package's result, and the output of failed
// tests). Build errors are always printed.
//
// The list has one skip a line, `#` comments and blank lines ignored:
//
//	PACKAGE TEST REASON...
//
// PACKAGE is the import path or a trailing part of it ("rbd" names
// github.com/gotcmu/gotcmu/rbd), TEST the name `go test` prints
// ("TestBackendConformance/resize"), REASON why the skip is right, which
// must not be empty.
//
// Exit status: 0 when every test passed or was skipped as expected; 1 when
// a test or a build failed, a skip was not expected, or stdin held no test
// events; 2 for a bad command line or list.
package main
