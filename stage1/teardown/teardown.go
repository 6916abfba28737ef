// Package teardown is the stop and gc entrypoints of the stage1-host: stop
// asks a running pod to end (or kills it), gc releases what the pod held
// outside its directory once it has ended.
package teardown

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/stage1/boot"
	"github.com/rktng/rkt/stage1/cgroups"
	"github.com/rktng/rkt/stage1/machined"
)

// ErrNotRunning is returned by Stop for a pod with no live nspawn.
var ErrNotRunning = errors.New("pod is not running")

// Stop asks the pod in podDir to end.
//
// Graceful: SIGTERM to nspawn, which turns it into the pod's orderly
// shutdown (apps stopped, post-stop handlers run, the exit status kept).
// nspawn blocks the signal until it can act on it, so a stop right after
// the start is not lost, as a signal to a pod's PID 1 that is not yet
// systemd would be.
//
// Force: every process of the pod killed at once through its cgroups
// (cgroup.kill), and nspawn, whose death takes the pod's PID namespace
// with it, where the kernel lacks cgroup.kill.
func Stop(podDir string, force bool) error {
	nspawn, err := readPID(filepath.Join(podDir, pod.PPIDFile))
	if err != nil {
		return err
	}
	if !force {
		err := stopGracefully(nspawn)
		if !errors.Is(err, errStillRunning) {
			return err
		}
		// Like systemd's TimeoutStopSec: a pod that does not halt is
		// killed rather than left running behind a failed stop.
		fmt.Fprintf(os.Stderr, "stop: %v: killing it\n", err)
	}
	if b, err := os.ReadFile(filepath.Join(podDir, boot.CgroupsFile)); err == nil {
		for _, d := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0)
		}
	}
	if err := syscall.Kill(nspawn, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing pod (nspawn pid %d): %w", nspawn, err)
	}
	return nil
}

// stopGracefully asks nspawn to halt the pod and repeats the request until
// nspawn is gone: a pod's systemd that has not yet installed its signal
// handlers (right after start) ignores the halt signal, as any PID 1 does
// with a signal it does not handle. A pod that is still there after
// stopWait is left to `stop --force`.
func stopGracefully(nspawn int) error {
	deadline := time.Now().Add(stopWait)
	for {
		err := syscall.Kill(nspawn, syscall.SIGTERM)
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("stopping pod (nspawn pid %d): %w", nspawn, err)
		}
		for next := time.Now().Add(time.Second); time.Now().Before(next); {
			time.Sleep(50 * time.Millisecond)
			if syscall.Kill(nspawn, 0) != nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod (nspawn pid %d) still running %v after the stop request: %w", nspawn, stopWait, errStillRunning)
		}
	}
}

const stopWait = 10 * time.Second

var errStillRunning = errors.New("pod did not halt")

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%s: %w", path, ErrNotRunning)
	}
	if err != nil {
		return 0, err
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
// machined registration, its cgroups and the host's link to its journal.
// It is idempotent. The stage1 mounts nothing in the host's namespace, so
// there are no mounts to release here.
func GC(ctx context.Context, podDir, uuid string) error {
	var errs []error
	// machined does not notice a dead leader: a pod killed with --force
	// stays listed until unregistered.
	if err := machined.Unregister(ctx, boot.MachineName(uuid)); err != nil {
		errs = append(errs, err)
	}
	b, err := os.ReadFile(filepath.Join(podDir, boot.CgroupsFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("reading the pod's cgroups: %w", err))
	}
	var dirs []string
	for _, d := range strings.Fields(string(b)) {
		// Only scopes of this pod: the file is in the pod directory, but
		// gc must never empty a cgroup it did not create.
		if filepath.Base(d) == cgroups.ScopeName(boot.MachineName(uuid)) {
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
