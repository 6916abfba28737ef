package teardown

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestChildFindsTheOnlyChild(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 5 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// The child is sh's fork until it has exec'ed sleep.
	var child int
	var err error
	var comm []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if child, err = Child(cmd.Process.Pid); err == nil {
			if comm, _ = os.ReadFile("/proc/" + strconv.Itoa(child) + "/comm"); string(comm) == "sleep\n" {
				break
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(comm) != "sleep\n" {
		t.Errorf("child %d is %q, want sleep", child, comm)
	}
	if _, err := Child(child); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Child of a childless process: %v, want ErrNotRunning", err)
	}
}

func TestStopWithoutPPIDIsNotRunning(t *testing.T) {
	if err := Stop(t.TempDir(), false, io.Discard); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Stop: %v, want ErrNotRunning", err)
	}
}

func TestGCOfAPodThatNeverRanIsANoOp(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "stage1/rootfs/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "")
	if _, err := os.Stat("/run/dbus/system_bus_socket"); err == nil {
		t.Skip("a system bus runs here: gc would talk to it")
	}
	for i := 0; i < 2; i++ {
		if err := GC(t.Context(), dir, "0a1b2c3d-0000-4000-8000-00000000000f"); err != nil {
			t.Fatalf("gc #%d: %v", i+1, err)
		}
	}
}
