package tests

import (
	"archive/tar"
	"os"
	"strings"
	"testing"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/tests/testutil"
)

// TestStage1FailsBeforeApps: a pod that fails before its apps start (a
// volume nspawn or fly cannot mount; on stage1-host, the host's cgroupfs
// missing) is rkt's failure: exit 254 and one line "rkt run: CAUSE", the
// stage1's own text only under --debug.
func TestStage1FailsBeforeApps(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	file := c.WriteFile("not-a-dir", "x")
	im := c.A.InspectImage("example.com/dir-volume", "--print-msg=app ran")
	im.Files = append(im.Files, acibuild.File{Path: "vol", Mode: os.ModeDir | 0o755, Type: tar.TypeDir})
	im.AddMountPoint("vol", "/vol", false)
	aci := c.WriteImage(im)
	badVolume := []string{"--volume=vol,kind=host,source=" + file, aci}

	check := func(what string, r testutil.Result, cause string, debug bool) {
		t.Helper()
		c.Expect(r, 254)
		lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "rkt run: ") || !strings.Contains(last, cause) {
			t.Errorf("%s: want a last line \"rkt run: ...%s...\": %v", what, cause, r)
		}
		if !debug && len(lines) != 1 {
			t.Errorf("%s: want one line on stderr without --debug: %v", what, r)
		}
		if debug && len(lines) < 2 {
			t.Errorf("%s: want the stage1's own text under --debug: %v", what, r)
		}
		if strings.Contains(r.Stdout, "app ran") {
			t.Errorf("%s: the app ran: %v", what, r)
		}
	}
	check("file volume on a directory", c.Run(badVolume...), file, false)
	debugRun := append([]string{"--debug", testutil.Insecure, "run", "--stage1-path=" + c.Stage1().ACI}, badVolume...)
	check("file volume on a directory, --debug", c.Rkt(debugRun...), file, true)
	if c.Stage1().Flavor == "host" {
		unshare := c.RequireTool("unshare")
		// In a mount namespace of its own, where the test's tmpfs hides
		// the host's cgroup hierarchies.
		wrap := []string{unshare, "-m", "--propagation", "private", "sh", "-c", `mount -t tmpfs tmpfs /sys/fs/cgroup && exec "$@"`, "sh"}
		check("no cgroupfs", c.RunWith(testutil.Opts{Wrap: wrap}, c.InspectACI("--print-msg=app ran")), "cgroup", false)
	}
}
