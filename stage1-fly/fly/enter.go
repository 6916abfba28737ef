package fly

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/stage1"
)

// enter is the enter entrypoint: it runs a command in the app's mount
// namespace and root, with the app's environment, credentials and working
// directory, by becoming the command. Its working directory is the pod
// directory; when there is no pod manifest there, the environment and
// credentials are taken from the app process itself (/proc/PID).
func enter(log *logger, args []string) error {
	ea, err := stage1.ParseEnterArgs(args)
	if err != nil {
		return err
	}
	name, app, env, err := enterTarget(ea)
	if err != nil {
		return err
	}
	root, err := unix.Open(fmt.Sprintf("/proc/%d/root", ea.PID), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("root of pod process %d: %w", ea.PID, err)
	}
	if err := joinMountNS(ea.PID); err != nil {
		return err
	}
	if err := unix.Fchdir(root); err != nil {
		return fmt.Errorf("entering root of pod process %d: %w", ea.PID, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot to root of pod process %d: %w", ea.PID, err)
	}
	return execApp(log, name, app, env, -1, -1)
}

// enterTarget describes the command to run: the app's settings with the
// command as exec.
func enterTarget(ea stage1.EnterArgs) (string, *appSection, []string, error) {
	podDir, err := unix.Getwd()
	if err != nil {
		return "", nil, nil, fmt.Errorf("pod directory: %w", err)
	}
	pm, err := readPodManifest(podDir)
	if errors.Is(err, fs.ErrNotExist) {
		return fromProcess(ea)
	}
	if err != nil {
		return "", nil, nil, err
	}
	rapp, err := theApp(pm, ea.AppName)
	if err != nil {
		return "", nil, nil, err
	}
	im, err := readImageManifest(podDir, rapp.Name)
	if err != nil {
		return "", nil, nil, err
	}
	a, err := effectiveApp(rapp, im)
	if err != nil {
		return "", nil, nil, err
	}
	c := *a
	c.Exec = ea.Cmd
	return rapp.Name, &c, appEnv(rapp.Name, a, im), nil
}

// fromProcess takes the credentials and environment of the app process.
func fromProcess(ea stage1.EnterArgs) (string, *appSection, []string, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", ea.PID))
	if err != nil {
		return "", nil, nil, fmt.Errorf("pod process %d: %w", ea.PID, err)
	}
	a := &appSection{Exec: ea.Cmd}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		switch {
		case k == "Uid" && len(f) > 0:
			a.User = f[0]
		case k == "Gid" && len(f) > 0:
			a.Group = f[0]
		case k == "Groups":
			for _, g := range f {
				if n, err := strconv.Atoi(g); err == nil {
					a.SupplementaryGIDs = append(a.SupplementaryGIDs, n)
				}
			}
		}
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", ea.PID))
	if err != nil {
		return "", nil, nil, fmt.Errorf("environment of pod process %d: %w", ea.PID, err)
	}
	var env []string
	for _, kv := range bytes.Split(raw, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	name := ea.AppName
	if name == "" {
		name = "app"
	}
	return name, a, env, nil
}

// joinMountNS moves this thread into the mount namespace of pid, unless it
// is there already. setns(CLONE_NEWNS) refuses a thread that shares its
// filesystem context (root, cwd) with other threads, which every Go thread
// does: unshare(CLONE_FS) gives this (locked) thread its own first. The
// other threads stay behind, which is harmless since this one execs.
func joinMountNS(pid int) error {
	nsPath := fmt.Sprintf("/proc/%d/ns/mnt", pid)
	var theirs, ours unix.Stat_t
	if err := unix.Stat(nsPath, &theirs); err != nil {
		return fmt.Errorf("mount namespace of pod process %d: %w", pid, err)
	}
	if err := unix.Stat("/proc/thread-self/ns/mnt", &ours); err == nil && ours.Dev == theirs.Dev && ours.Ino == theirs.Ino {
		return nil
	}
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mount namespace of pod process %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unsharing filesystem context: %w", err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("joining mount namespace of pod process %d: %w", pid, err)
	}
	return nil
}
