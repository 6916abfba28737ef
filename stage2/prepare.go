package stage2

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/mountinfo"
)

// InteractiveFlag exists in the pod when the console is the user's
// terminal (the stage1 writes it).
const InteractiveFlag = "/rkt/interactive"

// devNodes are bound from the pod's /dev, which nspawn set up, into each
// app's /dev: appc's list of devices.
var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty", "console"}

// PrivateMounts moves the calling thread, locked to its goroutine for
// good, into a mount namespace of its own, a slave of the pod's (what a
// unit's PrivateMounts=yes gives, without systemd's set-up before every
// command of the unit): the mounts of Prepare stay out of the pod's
// systemd's sight, and the pod's later mounts (volumes of apps added
// later) still reach the app. A mount namespace is a thread's in Go: this
// thread forks the handlers and execs the app (as in JoinCgroups).
func (a *App) PrivateMounts() error {
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return a.fail(ExitConfig, "creating the app's mount namespace: %w", err)
	}
	if err := mountinfo.Mount("", "/", "", syscall.MS_REC|syscall.MS_SLAVE, ""); err != nil {
		return a.fail(ExitConfig, "creating the app's mount namespace: %w", err)
	}
	return nil
}

// Prepare gives the app its /proc, /sys, /dev (with /dev/pts, /dev/shm
// shared by the pod's apps, /dev/log) and, for an app that speaks sd_notify,
// the manager's notification socket; then makes the rootfs read-only if
// asked. Volumes are already there: the stage1 bound them. It runs in the
// app's own mount namespace (PrivateMounts), as root, before EnterRoot; it
// is part of the app's start rather than a unit of its own because every
// process on the way to the app's first instruction costs the pod's start
// time.
func (a *App) Prepare() error {
	if _, err := os.Stat(InteractiveFlag); errors.Is(err, os.ErrNotExist) {
		plainConsole()
	}
	root := a.Root
	in := func(p string) (string, error) { return ResolveIn(root, p) }
	if a.ReadOnlyRootFS {
		// A mount point of its own, to remount read-only at the end.
		if err := mountinfo.Mount(root, root, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return a.fail(ExitConfig, "preparing rootfs: %w", err)
		}
	}
	steps := []func() error{
		func() error {
			p, err := dir(in, "/proc")
			if err != nil {
				return err
			}
			if err := mountinfo.Mount("proc", p, "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
				return err
			}
			if a.DisablePaths {
				return nil
			}
			return maskProc(in)
		},
		func() error {
			p, err := dir(in, "/sys")
			if err != nil {
				return err
			}
			if err := mountinfo.Mount("/sys", p, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
				return err
			}
			if a.DisablePaths {
				return nil
			}
			return mountinfo.Mount("", p, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "")
		},
		func() error { return a.hybridCgroups(in) },
		func() error { return prepareDev(in) },
		func() error { return a.prepareSystemFiles(in) },
		func() error {
			if !a.Notify {
				return nil
			}
			return bindFile(in, "/run/systemd/notify", "/run/systemd/notify")
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return a.fail(ExitConfig, "preparing rootfs: %w", err)
		}
	}
	if a.ReadOnlyRootFS {
		if err := mountinfo.Mount("", root, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return a.fail(ExitConfig, "preparing rootfs: %w", err)
		}
	}
	return nil
}

// prepareSystemFiles gives the app what rkt gave every app whatever its
// image holds: a /tmp anyone may write (mode 1777) and a /run, both
// tmpfs when the rootfs is read-only so that they stay writable,
// /etc/hostname showing the pod's hostname, and /etc/mtab as a link to
// /proc/self/mounts. What the image has is kept.
func (a *App) prepareSystemFiles(in func(string) (string, error)) error {
	for _, d := range []struct {
		path string
		mode uint32
	}{{"/tmp", 0o1777}, {"/run", 0o755}} {
		t, err := in(d.path)
		if err != nil {
			return err
		}
		_, err = os.Lstat(t)
		if errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(t, 0o755); err != nil {
				return err
			}
			// Mkdir's mode goes through the umask and drops the sticky bit.
			if err := unix.Chmod(t, d.mode); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if a.ReadOnlyRootFS {
			if err := mountinfo.Mount("tmpfs", t, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("mode=%o", d.mode)); err != nil {
				return err
			}
		}
	}
	if err := bindFile(in, "/etc/hostname", "/proc/sys/kernel/hostname"); err != nil {
		return err
	}
	etc, err := dir(in, "/etc")
	if err != nil {
		return err
	}
	mtab := filepath.Join(etc, "mtab")
	if _, err := os.Lstat(mtab); errors.Is(err, os.ErrNotExist) {
		return os.Symlink("../proc/self/mounts", mtab)
	}
	return nil
}

func prepareDev(in func(string) (string, error)) error {
	dev, err := dir(in, "/dev")
	if err != nil {
		return err
	}
	if err := mountinfo.Mount("tmpfs", dev, "tmpfs", syscall.MS_NOSUID|syscall.MS_STRICTATIME, "mode=0755"); err != nil {
		return err
	}
	for _, n := range devNodes {
		if err := bindFile(in, "/dev/"+n, "/dev/"+n); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		name     string
		optional bool
	}{{"pts", false}, {"shm", false}, {"mqueue", true}} {
		src := "/dev/" + d.name
		if _, err := os.Stat(src); err != nil && d.optional {
			continue
		}
		p := filepath.Join(dev, d.name)
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := mountinfo.Mount(src, p, "", syscall.MS_BIND, ""); err != nil {
			return err
		}
	}
	for link, target := range map[string]string{
		"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, filepath.Join(dev, link)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	if _, err := os.Stat("/run/systemd/journal/dev-log"); err == nil {
		if err := bindFile(in, "/dev/log", "/run/systemd/journal/dev-log"); err != nil {
			return err
		}
	}
	return nil
}

// dir resolves p in the app's root and makes sure it is a directory.
// hybridCgroups shows the app its own v1 cgroups, where its memory and
// CPU limits are (the pod's /sys only has the pod systemd's cgroup2), laid
// out as the host's hybrid tree: a read-only tmpfs at /sys/fs/cgroup with
// the app's cgroup of each v1 controller bound read-only at
// /sys/fs/cgroup/<controllers>. The app's /sys is first made a slave, so
// that none of this propagates back to the pod's own /sys (where its
// systemd needs its cgroup2). Without app cgroups the pod's view stays.
func (a *App) hybridCgroups(in func(string) (string, error)) error {
	if len(a.CgroupDirs) == 0 {
		return nil
	}
	sys, err := in("/sys")
	if err != nil {
		return err
	}
	if err := mountinfo.Mount("", sys, "", syscall.MS_REC|syscall.MS_SLAVE, ""); err != nil {
		return err
	}
	base, err := in("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	if err := mountinfo.Mount("tmpfs", base, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "mode=0755"); err != nil {
		return err
	}
	ro := uintptr(syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC)
	for _, d := range a.CgroupDirs {
		t := filepath.Join(base, filepath.Base(d))
		if err := os.MkdirAll(t, 0o755); err != nil {
			return err
		}
		if err := mountinfo.Mount(d, t, "", syscall.MS_BIND, ""); err != nil {
			return err
		}
		// The host's cgroup mounts are shared: keep the app's copy apart.
		if err := mountinfo.Mount("", t, "", syscall.MS_PRIVATE, ""); err != nil {
			return err
		}
		if err := mountinfo.Mount("", t, "", ro, ""); err != nil {
			return err
		}
	}
	return mountinfo.Mount("", base, "", syscall.MS_REMOUNT|syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "")
}

func dir(in func(string) (string, error), p string) (string, error) {
	t, err := in(p)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(t, 0o755); err != nil {
		return "", err
	}
	return t, nil
}

// bindFile binds the pod's file src over p in the app's root, creating an
// empty file there to mount on.
func bindFile(in func(string) (string, error), p, src string) error {
	t, err := in(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(t), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(t, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return mountinfo.Mount(src, t, "", syscall.MS_BIND, "")
}

// plainConsole turns off newline translation on the pod's console: it is a
// pseudo-terminal that nspawn copies to rkt's stdout, and the apps' "\n"
// must arrive as "\n", not "\r\n". An interactive console keeps it.
func plainConsole() {
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return
	}
	t.Oflag &^= unix.ONLCR
	_ = unix.IoctlSetTermios(fd, unix.TCSETS, t)
}
