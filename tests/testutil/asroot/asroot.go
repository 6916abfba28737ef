// Package asroot is the one check of the tests that need root: unit tests
// anywhere in the tree and the functional tests in tests/ call Require. It
// imports nothing of the project, so that any package's tests can use it
// (tests/testutil imports common/mountinfo, whose tests need root too).
package asroot

import (
	"os"
	"testing"
)

// Require skips t, saying why it needs root, unless the test runs as root.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("requires root: " + why)
	}
}
