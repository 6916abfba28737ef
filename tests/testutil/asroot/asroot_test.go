package asroot

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRequire runs a probe through the test binary as a user other than
// root: without RKT_TEST_REQUIRE_ROOT the probe skips, with it it fails.
func TestRequire(t *testing.T) {
	if os.Getenv("ASROOT_PROBE") == "1" {
		Require(t, "probe")
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var as []string
	if os.Geteuid() == 0 {
		// Root never skips: run the probe as nobody, from a copy of the
		// test binary that nobody can reach.
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("as root, needs setpriv to run the probe as another user")
		}
		as = []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}
		dir, err := os.MkdirTemp("", "asroot-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		b, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		self = filepath.Join(dir, "probe.test")
		if err := os.WriteFile(self, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		require string
		want    string
		fails   bool
	}{
		{"", "--- SKIP: TestRequire", false},
		{"1", "--- FAIL: TestRequire", true},
	} {
		argv := append(as, self, "-test.run=^TestRequire$", "-test.v")
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = "/"
		cmd.Env = append(os.Environ(), "ASROOT_PROBE=1", EnvRequire+"="+tc.require)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fails || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s=%q: want %q (failing: %v), got %v:\n%s", EnvRequire, tc.require, tc.want, tc.fails, err, out)
		}
	}
}
