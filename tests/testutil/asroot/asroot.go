// Package asroot is the one check of the tests that need root: unit tests
// anywhere in the tree and the functional tests in tests/ call Require. It
// imports nothing of the project, so that any package's tests can use it
// (tests/testutil imports common/mountinfo, whose tests need root too).
package asroot

import (
	"os"
	"testing"
)

// EnvRequire names the variable that says root is expected: set to 1 (by
// `./build.sh test`, and so by CI's .ci/run), a test that needs root fails
// when it is not root instead of skipping, so that a run meant to cover
// the root tests cannot pass without running them.
const EnvRequire = "RKT_TEST_REQUIRE_ROOT"

// Require skips t, saying why it needs root, unless the test runs as root;
// under RKT_TEST_REQUIRE_ROOT=1 it fails t instead.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("requires root: %s (%s=1: this run must include the root tests)", why, EnvRequire)
	}
	t.Skip("requires root: " + why)
}
