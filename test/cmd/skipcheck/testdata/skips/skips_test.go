// Package skips is what TestRealGoTest runs `go test -json` on: a test
// that passes, one skipped at the top and one with a skipped subtest.
package skips

import "testing"

func TestPasses(t *testing.T) {}

func TestSkippedWhole(t *testing.T) {
	t.Log("something logged before the skip")
	t.Skip("needs a device this machine lacks")
}

func TestWithSubtests(t *testing.T) {
	t.Run("runs", func(t *testing.T) {})
	t.Run("skipped case", func(t *testing.T) {
		t.Skip("backend does not claim it")
	})
}
