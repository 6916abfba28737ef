package prepare

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/tests/testutil/asroot"
)

// TestProbeOverlay: the probe mounts (volatile where the kernel has it)
// and unmounts an overlay and leaves nothing in the pod directory. It runs
// on a thread of its own in a private mount namespace, so nothing it
// mounts is seen outside.
func TestProbeOverlay(t *testing.T) {
	asroot.Require(t, "mounts an overlay")
	podDir, lower := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(lower, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, in its own namespace, exits with
		// the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- err
			return
		}
		errc <- probeOverlay(podDir, lower)
	}()
	if err := <-errc; err != nil {
		t.Fatalf("probeOverlay: %v", err)
	}
	ents, err := os.ReadDir(podDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("pod directory after the probe: %d entries (%s), want none", len(ents), ents[0].Name())
	}
}
