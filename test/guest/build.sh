#!/bin/bash
# Build the guest suites' Go checks into DIR (a directory the guest can see): guest.test (this
# package's tests, build tag guest), test2json (the Go toolchain's, to turn its -test.v output
# into events) and testsummary (test/cmd/testsummary: the events as the summary's PASS/FAIL/SKIP
# lines). Static, so they run in the guest whatever its libc. Used by test/vm/test-vm.sh and
# test/ha/test-ha.sh.   Usage: build.sh DIR
set -euo pipefail
DIR=${1:?usage: build.sh DIR}
cd "$(dirname "$(readlink -f "$0")")/../.."
export CGO_ENABLED=0
go test -c -tags guest -o "$DIR/guest.test" ./test/guest
go build -o "$DIR/test2json" cmd/test2json
go build -o "$DIR/testsummary" ./test/cmd/testsummary
