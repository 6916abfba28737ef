// Package enter is the enter entrypoint of the stage1-host: it joins the
// namespaces of the pod's PID 1 (the mount namespace of the app's own
// processes, where its /proc and /dev are) and runs the stage2 helper
// there, which
// takes the app's root, credentials and environment before exec'ing the
// command.
package enter

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage1/units"
)

// namespaces are joined in this order; mnt comes last because after it
// /proc/PID paths of the host are no longer what they were.
var namespaces = []struct {
	name string
	flag int
}{
	{"cgroup", unix.CLONE_NEWCGROUP},
	{"ipc", unix.CLONE_NEWIPC},
	{"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET},
	{"pid", unix.CLONE_NEWPID},
	{"mnt", unix.CLONE_NEWNS},
}

// Run runs args.Cmd as app args.AppName of the pod whose PID 1 is args.PID,
// with the caller's stdio, and returns its exit status.
func Run(args stage1.EnterArgs) (int, error) {
	if args.AppName == "" {
		return 0, fmt.Errorf("enter: --appname is required by this stage1: %w", stage1.ErrUsage)
	}
	// setns applies to the calling thread only, and a mount namespace can
	// only be joined by a thread that does not share its filesystem
	// context: the goroutine stays on one thread, which unshares it and
	// is not given back to the runtime.
	runtime.LockOSThread()
	appPID, err := joinAppCgroups(args.AppName, args.PID)
	if err != nil {
		return 0, fmt.Errorf("enter: %w", err)
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return 0, fmt.Errorf("enter: unsharing filesystem context: %w", err)
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	self := func(ns string) string { return "/proc/self/ns/" + ns }
	for _, ns := range namespaces {
		p := fmt.Sprintf("/proc/%d/ns/%s", args.PID, ns.name)
		if ns.name == "mnt" && appPID > 0 {
			// The app's mounts (its /proc, /dev...) are in its own
			// mount namespace (stage1/units), a slave of the pod's.
			if q := fmt.Sprintf("/proc/%d/ns/mnt", appPID); exists(q) {
				p = q
			}
		}
		if same(p, self(ns.name)) {
			fds = append(fds, -1)
			continue
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) && ns.name == "cgroup" {
				fds = append(fds, -1)
				continue
			}
			return 0, fmt.Errorf("enter: opening %s: %w", p, err)
		}
		fds = append(fds, fd)
	}
	for i, ns := range namespaces {
		if fds[i] < 0 {
			continue
		}
		if err := unix.Setns(fds[i], ns.flag); err != nil {
			return 0, fmt.Errorf("enter: joining %s namespace of pid %d: %w", ns.name, args.PID, err)
		}
	}
	// Now in the app's mount namespace, whose root is the stage1 rootfs.
	cmd := exec.Command(units.Stage2Bin, append([]string{"enter", args.AppName, "--"}, args.Cmd...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The app's environment comes from its config; only the terminal
	// type of the caller's terminal passes through.
	cmd.Env = []string{}
	if term, ok := os.LookupEnv("TERM"); ok {
		cmd.Env = append(cmd.Env, "TERM="+term)
	}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return ee.ExitCode(), nil
		}
		return 0, fmt.Errorf("enter: running %s in pid %d's namespaces: %w", units.Stage2Bin, args.PID, err)
	}
	return 0, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func same(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
