package enter

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rktng/rkt/stage1/cgroups"
)

// joinAppCgroups moves the calling process into the app's cgroup in every
// hierarchy where the pod has one (the v1 ones the stage1 made and
// limited, the cgroup2 one of the app's unit in the pod's systemd), from
// the host side where all of them are writable: an entered command counts
// against the app's limits like the app's own processes (rkt ran it in no
// cgroup at all, CVE-2019-10147), and its /proc/self/cgroup is the app's.
// In a v1 hierarchy without the app's cgroup it joins podPID's, where the
// app is; a cgroup2 one without it is skipped. A pod without a cgroups
// file (an older stage1) is not entered unconfined silently but refused.
// It returns a process of the app's unit found there (0 if none), whose
// mount namespace is the app's.
func joinAppCgroups(app string, podPID int) (int, error) {
	b, err := os.ReadFile(cgroups.ListFile) // in the pod directory, the working directory
	if err != nil {
		return 0, fmt.Errorf("reading the pod's cgroups: %w", err)
	}
	appPID := 0
	pid := []byte(strconv.Itoa(os.Getpid()))
	unit := app + ".service"
	joined := 0
	for _, dir := range strings.Fields(string(b)) {
		target := ""
		_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			if e.Name() == unit {
				target = p
				return filepath.SkipAll
			}
			return nil
		})
		if target != "" && appPID == 0 {
			appPID = firstProc(target)
		}
		if target == "" {
			if isV2(dir) {
				continue
			}
			// A v1 hierarchy the pod's systemd does not manage
			// (name=systemd under a unified pod): the app is where
			// the pod's PID 1 is (nspawn's payload cgroup), and so
			// goes the entered command.
			if target = cgroupOf(dir, podPID); target == "" {
				continue
			}
		}
		if err := os.WriteFile(filepath.Join(target, "cgroup.procs"), pid, 0); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // the app's unit ended meanwhile
			}
			return 0, fmt.Errorf("joining cgroup %s: %w", target, err)
		}
		joined++
	}
	if joined == 0 {
		return 0, fmt.Errorf("app %s has no cgroup in the pod", app)
	}
	return appPID, nil
}

// firstProc is the first process listed in cgroup dir that is not in the
// caller's mount namespace (another rkt enter on its way in is), 0 if none.
func firstProc(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil || same(fmt.Sprintf("/proc/%d/ns/mnt", n), "/proc/self/ns/mnt") {
			continue
		}
		return n
	}
	return 0
}

// isV2 is whether dir is in a cgroup2 hierarchy, where only leaves hold
// processes: the pod's own cgroup is no place to join there.
func isV2(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "cgroup.controllers"))
	return err == nil
}

// cgroupOf is the cgroup below dir (inclusive) that holds pid, or "".
func cgroupOf(dir string, pid int) string {
	want := strconv.Itoa(pid)
	found := ""
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if f == want {
				found = p
				return filepath.SkipAll
			}
		}
		return nil
	})
	return found
}
