package stage2

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/rktng/rkt/common/mountinfo"
	"github.com/rktng/rkt/common/stage1"
)

// ExitConfine is the helper's status when the app's isolators cannot be
// applied: the app never runs unconfined.
const ExitConfine = stage1.ExitFailure

func (a *App) confineBefore() error {
	if a.Confinement == nil {
		return nil
	}
	if err := a.Confinement.BeforeCredentials(); err != nil {
		return a.fail(ExitConfine, "applying isolators: %w", err)
	}
	return nil
}

func (a *App) confineAfter() error {
	if a.Confinement == nil {
		return nil
	}
	if err := a.Confinement.AfterCredentials(); err != nil {
		return a.fail(ExitConfine, "applying isolators: %w", err)
	}
	return nil
}

// JoinCgroups moves the calling process into the app's cgroups, where the
// stage1 set its limits; children (the app, handlers) inherit them. It
// runs in the stage1 root, before EnterRoot.
//
// In a v1 hierarchy only this thread moves (its "tasks" file), and the
// thread stays locked to the goroutine for good: it is the one that forks
// the handlers and execs the app, and exec leaves no other thread. Moving
// the whole process (cgroup.procs) takes the kernel's global
// threadgroup lock for writing, which waits for an RCU grace period
// (~10 ms here) on the way to every app's start; moving the calling
// thread alone does not (Linux 6.6+; older kernels take the lock either
// way).
func (a *App) JoinCgroups() error {
	runtime.LockOSThread()
	for _, d := range a.CgroupDirs {
		file := "tasks"
		if _, err := os.Stat(filepath.Join(d, file)); err != nil {
			file = "cgroup.procs" // cgroup2 has no per-thread file outside threaded subtrees
		}
		// "0" is the writer itself, whatever pid namespace it sees.
		if err := os.WriteFile(filepath.Join(d, file), []byte("0"), 0); err != nil {
			return a.fail(ExitConfine, "joining cgroup %s: %w", d, err)
		}
	}
	return nil
}

// maskedFiles and maskedDirs are the /proc entries that reveal or change
// the host's kernel state, hidden from apps as rkt and docker hide them.
var (
	maskedFiles = []string{"/proc/kcore", "/proc/sysrq-trigger", "/proc/keys", "/proc/timer_list",
		"/proc/sched_debug", "/proc/latency_stats", "/proc/kmsg"}
	maskedDirs   = []string{"/proc/acpi", "/proc/scsi", "/proc/firmware"}
	readOnlyDirs = []string{"/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"}
)

// maskProc hides maskedFiles (/dev/null bound over them) and maskedDirs
// (an empty read-only tmpfs), and makes readOnlyDirs read-only, in the
// app's /proc.
func maskProc(in func(string) (string, error)) error {
	for _, f := range maskedFiles {
		p, err := in(f)
		if err != nil {
			return err
		}
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := mountinfo.Mount("/dev/null", p, "", syscall.MS_BIND, ""); err != nil {
			return err
		}
	}
	for _, d := range maskedDirs {
		p, err := in(d)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			continue
		}
		if err := mountinfo.Mount("tmpfs", p, "tmpfs", syscall.MS_RDONLY, "size=0"); err != nil {
			return err
		}
	}
	for _, d := range readOnlyDirs {
		p, err := in(d)
		if err != nil {
			return err
		}
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := mountinfo.Mount(p, p, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return err
		}
		if err := mountinfo.Mount("", p, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", d, err)
		}
	}
	return nil
}
