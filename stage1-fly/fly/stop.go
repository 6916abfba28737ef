package fly

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/stage1"
)

// stop is the stop entrypoint: SIGTERM to the app (SIGKILL with --force).
// Its working directory is the pod directory. A pod that has already ended
// is not an error. Only the app itself is signalled: fly does not make it a
// process group leader (that would take an interactive app off its
// terminal), so its children are its own business, as with rkt fly.
func stop(args []string) error {
	sa, err := stage1.ParseStopArgs(args)
	if err != nil {
		return err
	}
	sig := unix.SIGTERM
	if sa.Force {
		sig = unix.SIGKILL
	}
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		if ended, _ := podEnded(); ended {
			return nil
		}
		return fmt.Errorf("pod %s has no pid file yet: is it starting?", sa.UUID)
	}
	if err != nil {
		return fmt.Errorf("pid of pod %s: %w", sa.UUID, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("pid file of pod %s holds %q", sa.UUID, b)
	}
	// Pin the process first, then check that the pod still runs: if the
	// app has ended, its pid may belong to someone else by now.
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return nil
	}
	if err == unix.ENOSYS {
		pidfd = -1
	} else if err != nil {
		return fmt.Errorf("process %d of pod %s: %w", pid, sa.UUID, err)
	} else {
		defer unix.Close(pidfd)
	}
	if ended, err := podEnded(); err != nil {
		return err
	} else if ended {
		return nil
	}
	if pidfd >= 0 {
		err = unix.PidfdSendSignal(pidfd, sig, nil, 0)
	} else {
		err = unix.Kill(pid, sig)
	}
	if err != nil && err != unix.ESRCH {
		return fmt.Errorf("signalling process %d of pod %s with %v: %w", pid, sa.UUID, sig, err)
	}
	return nil
}

// podEnded reports whether nobody holds a lock on the pod directory (the
// working directory), i.e. the app that kept RKT_LOCK_FD is gone.
func podEnded() (bool, error) {
	fd, err := unix.Open(".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("opening pod directory: %w", err)
	}
	defer unix.Close(fd)
	err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("probing pod lock: %w", err)
	}
	return true, nil // closing fd releases the probe
}

// gc is the gc entrypoint. fly holds nothing outside the pod directory: its
// mounts live in the app's private mount namespace, which the kernel tears
// down with the app, so there is nothing to release.
func gc(args []string) error {
	_, err := stage1.ParseGCArgs(args)
	return err
}
