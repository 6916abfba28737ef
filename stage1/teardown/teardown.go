// Package teardown is the stop and gc entrypoints of the stage1-host: stop
// asks a running pod to end (or kills it), gc releases what the pod held
// outside its directory once it has ended.
package teardown

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/stage1/cgroups"
	"github.com/rktng/rkt/stage1/machined"
	"github.com/rktng/rkt/stage1/podnet"
	"github.com/rktng/rkt/stage1/units"
)

// ErrNotRunning is returned by Stop for a pod with no live nspawn.
var ErrNotRunning = errors.New("pod is not running")

// Stop asks the pod in podDir to end.
//
// Graceful: the stop request file in the pod (units.StopRequest), which the
// pod's systemd acts on once its apps have started: the apps get SIGTERM,
// their post-stop handlers run, the exit status is kept. Neither nspawn nor
// the pod's PID 1 is signalled: a halt signal reaching the pod's systemd
// before it installed its handlers is dropped by the kernel, and a second
// SIGTERM to nspawn is nspawn's order to kill the pod.
//
// Force: every process of the pod killed at once through its cgroups
// (cgroup.kill), and nspawn, whose death takes the pod's PID namespace
// with it, where the kernel lacks cgroup.kill.
//
// A graceful stop that times out is said on warn before the kill.
func Stop(podDir string, force bool, warn io.Writer) error {
	nspawn, err := waitNspawn(podDir)
	if err != nil {
		return err
	}
	if !force {
		err := stopGracefully(podDir, nspawn)
		if !errors.Is(err, errStillRunning) {
			return err
		}
		// Like systemd's TimeoutStopSec: a pod that does not halt is
		// killed rather than left running behind a failed stop.
		fmt.Fprintf(warn, "stop: %v: killing it\n", err)
	}
	if b, err := os.ReadFile(filepath.Join(podDir, cgroups.ListFile)); err == nil {
		for _, d := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0)
		}
	}
	if err := syscall.Kill(nspawn, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing pod (nspawn pid %d): %w", nspawn, err)
	}
	return nil
}

// waitNspawn returns nspawn's pid once the run entrypoint has written it:
// a pod is running from the moment stage0 locked it in run/, a little
// before its stage1 has started nspawn.
func waitNspawn(podDir string) (int, error) {
	path := filepath.Join(podDir, pod.PPIDFile)
	deadline := time.Now().Add(stopWait)
	for {
		pid, err := readPID(path)
		if !errors.Is(err, ErrNotRunning) {
			return pid, err
		}
		if !runLocked(podDir) || time.Now().After(deadline) {
			return 0, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runLocked says whether a run entrypoint holds the pod's exclusive lock.
func runLocked(podDir string) bool {
	fd, err := unix.Open(podDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	return false
}

// stopGracefully writes the stop request and waits for nspawn to exit. The
// wait covers the rest of the pod's boot (the request waits for the apps)
// and the pod's own stop timeout (system.conf), after which its systemd
// kills stubborn apps itself and keeps their status; a pod still there
// after that is wedged, left to the caller to kill.
func stopGracefully(podDir string, nspawn int) error {
	if err := units.RequestStop(pod.Stage1RootfsPath(podDir)); err != nil {
		return err
	}
	for deadline := time.Now().Add(stopWait); ; {
		// The lock, not the pid: it goes with nspawn's exit even when
		// nobody reaps nspawn, and a pid may be reused.
		if !runLocked(podDir) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod (nspawn pid %d) still running %v after the stop request: %w", nspawn, stopWait, errStillRunning)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopWait bounds a graceful stop: the pod's boot, then its own
// DefaultTimeoutStopSec (10 s) and its exit.
const stopWait = 30 * time.Second

var errStillRunning = errors.New("pod did not halt")

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%s: %w", path, ErrNotRunning)
	}
	if err != nil {
		return 0, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		// Created but not yet written: stage1s write it with one
		// write(2), and common/pod reads an empty file the same way.
		return 0, fmt.Errorf("%s is empty: %w", path, ErrNotRunning)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: bad pid %q", path, b)
	}
	return pid, nil
}

// Child is the only child of pid: the pod's PID 1 when pid is nspawn.
func Child(pid int) (int, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		return 0, err
	}
	var kids []string
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err == nil {
			kids = append(kids, strings.Fields(string(b))...)
		}
	}
	if len(kids) != 1 {
		return 0, fmt.Errorf("pid %d has %d children, want 1: %w", pid, len(kids), ErrNotRunning)
	}
	return strconv.Atoi(kids[0])
}

// GC releases what the pod in podDir held outside its directory: its
// networks (CNI DEL of each, then its network namespace), its machined
// registration, its cgroups and the host's link to its journal. It is
// idempotent. Apart from the netns bind (private), the stage1 mounts
// nothing in the host's namespace.
func GC(ctx context.Context, podDir, uuid string) error {
	var errs []error
	if err := podnet.Teardown(ctx, podDir, uuid, podnet.PluginDirs(pod.Stage1RootfsPath(podDir))); err != nil {
		errs = append(errs, err)
	}
	// machined does not notice a dead leader: a pod killed with --force
	// stays listed until unregistered.
	if err := machined.Unregister(ctx, machined.MachineName(uuid)); err != nil {
		errs = append(errs, err)
	}
	b, err := os.ReadFile(filepath.Join(podDir, cgroups.ListFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("reading the pod's cgroups: %w", err))
	}
	var dirs []string
	for _, d := range strings.Fields(string(b)) {
		// Only scopes of this pod: the file is in the pod directory, but
		// gc must never empty a cgroup it did not create.
		if filepath.Base(d) == cgroups.ScopeName(machined.MachineName(uuid)) {
			dirs = append(dirs, d)
		}
	}
	if err := cgroups.Release(dirs); err != nil {
		errs = append(errs, err)
	}
	if err := unlinkJournal(podDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unlinkJournal removes /var/log/journal/<machine-id>, the link nspawn's
// --link-journal=try-guest made to the pod's journal, when it points into
// this pod.
func unlinkJournal(podDir string) error {
	id, err := os.ReadFile(filepath.Join(pod.Stage1RootfsPath(podDir), "etc/machine-id"))
	if err != nil {
		return nil
	}
	link := filepath.Join("/var/log/journal", strings.TrimSpace(string(id)))
	target, err := os.Readlink(link)
	if err != nil {
		return nil
	}
	abs, _ := filepath.Abs(podDir)
	if !strings.HasPrefix(target, abs+"/") && !strings.HasPrefix(target, podDir+"/") {
		if _, err := os.Stat(target); err == nil {
			return nil // another machine's, alive
		}
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing journal link %s: %w", link, err)
	}
	return nil
}
