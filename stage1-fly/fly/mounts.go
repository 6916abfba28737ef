package fly

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/mountinfo"
)

// secureJoin resolves unsafePath inside root as if root were "/": symlinks
// in the image (absolute or with "..") cannot lead out of it. Components
// that do not exist are appended as they are. Nothing in the pod runs yet,
// so the result cannot be raced.
func secureJoin(root, unsafePath string) (string, error) {
	resolved := "/"
	rest := unsafePath
	links := 0
	for rest != "" {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		switch comp {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, comp)
		st, err := os.Lstat(root + next)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			resolved = next
			continue
		}
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if links++; links > 255 {
			return "", &fs.PathError{Op: "resolve", Path: unsafePath, Err: syscall.ELOOP}
		}
		dest, err := os.Readlink(root + next)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(dest, "/") {
			resolved = "/"
		}
		rest = dest + "/" + rest
	}
	return filepath.Join(root, resolved), nil
}

// bind is one mount fly makes in the app's rootfs.
type bind struct {
	what     string // for errors: `volume "data"`, "/proc"...
	source   string // host path, or the filesystem name for tmpfs
	target   string // path inside the app
	fstype   string
	flags    uintptr
	readOnly bool
	// file: the source is not a directory (the target is created as a file).
	file bool
}

// systemMounts are the API filesystems every app gets. Like rkt fly, the
// host's /dev, /proc and /sys are bound recursively (fly has no PID or
// network namespace of its own) and /tmp is a fresh tmpfs.
var systemMounts = []bind{
	{what: "/dev", source: "/dev", target: "/dev", flags: unix.MS_BIND | unix.MS_REC},
	{what: "/proc", source: "/proc", target: "/proc", flags: unix.MS_BIND | unix.MS_REC},
	{what: "/sys", source: "/sys", target: "/sys", flags: unix.MS_BIND | unix.MS_REC},
	{what: "/tmp", source: "tmpfs", target: "/tmp", fstype: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV},
}

// systemFiles gives the app a /run and /etc/mtab (a link to
// /proc/self/mounts) when its image has none, as the default stage1 does.
// fly's /etc/hostname is the host's: the app shares its UTS namespace.
func systemFiles(rootfs string) error {
	run, err := secureJoin(rootfs, "/run")
	if err != nil {
		return fmt.Errorf("/run: %w", err)
	}
	if err := os.Mkdir(run, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating /run: %w", err)
	}
	etc, err := secureJoin(rootfs, "/etc")
	if err != nil {
		return fmt.Errorf("/etc: %w", err)
	}
	err = os.Symlink("../proc/self/mounts", filepath.Join(etc, "mtab"))
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(etc, 0o755); err == nil {
			err = os.Symlink("../proc/self/mounts", filepath.Join(etc, "mtab"))
		}
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating /etc/mtab: %w", err)
	}
	return nil
}

// volumeMounts works out the app's volume mounts: the pod manifest's mounts
// for the app, plus the app's mount points (pod manifest and image) that no
// mount covers, each filled by the pod volume of the same name. Empty
// volumes are created (with their mode and owner) in the pod directory.
// The result is sorted by target, so that a mount inside another comes
// after it.
func volumeMounts(podDir string, pm *podManifest, ra *runtimeApp, a *appSection, im *imageManifest) ([]bind, error) {
	vols := map[string]volume{}
	for _, v := range pm.Volumes {
		vols[v.Name] = v
	}
	mounts := append([]mount(nil), ra.Mounts...)
	mountPoints := append([]mountPoint(nil), a.MountPoints...)
	if im != nil && im.App != nil && im.App != a {
		mountPoints = append(mountPoints, im.App.MountPoints...)
	}
	mpReadOnly := map[string]bool{}
	for _, mp := range mountPoints {
		mpReadOnly[mp.Name] = mpReadOnly[mp.Name] || mp.ReadOnly
		covered := false
		for _, m := range mounts {
			if m.Volume == mp.Name || path.Clean(m.Path) == path.Clean(mp.Path) {
				covered = true
				break
			}
		}
		if !covered {
			if _, ok := vols[mp.Name]; !ok {
				return nil, fmt.Errorf("mount point %q (%s) of app %s: no volume named %q in the pod", mp.Name, mp.Path, ra.Name, mp.Name)
			}
			mounts = append(mounts, mount{Volume: mp.Name, Path: mp.Path})
		}
	}
	var out []bind
	for _, m := range mounts {
		v, ok := vols[m.Volume]
		if m.AppVolume != nil {
			v, ok = *m.AppVolume, true
		}
		if !ok {
			return nil, fmt.Errorf("mount of volume %q at %s: no such volume in the pod", m.Volume, m.Path)
		}
		b := bind{what: fmt.Sprintf("volume %q", v.Name), target: m.Path, flags: unix.MS_BIND | unix.MS_REC}
		// An explicit readOnly on the volume wins over the mount point's.
		b.readOnly = mpReadOnly[m.Volume]
		if v.ReadOnly != nil {
			b.readOnly = *v.ReadOnly
		}
		switch v.Kind {
		case "host":
			b.source = v.Source
			if v.Recursive != nil && !*v.Recursive {
				b.flags = unix.MS_BIND
			}
			st, err := os.Stat(v.Source)
			if err != nil {
				return nil, fmt.Errorf("volume %q: source %s: %w", v.Name, v.Source, unwrapPathError(err))
			}
			b.file = !st.IsDir()
		case "empty":
			src, err := emptyVolume(podDir, v)
			if err != nil {
				return nil, err
			}
			b.source = src
		default:
			return nil, fmt.Errorf("volume %q: unknown kind %q", v.Name, v.Kind)
		}
		out = append(out, b)
	}
	sort.SliceStable(out, func(i, j int) bool { return path.Clean(out[i].target) < path.Clean(out[j].target) })
	return out, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// emptyVolume creates the directory of an empty volume, inside the pod
// directory so that it goes with the pod, with the volume's mode and owner.
func emptyVolume(podDir string, v volume) (string, error) {
	dir := emptyVolumePath(podDir, v.Name)
	mode, uid, gid := uint64(0o755), 0, 0
	if v.Mode != nil {
		m, err := strconv.ParseUint(*v.Mode, 8, 32)
		if err != nil || m > 0o7777 {
			return "", fmt.Errorf("volume %q: bad mode %q", v.Name, *v.Mode)
		}
		mode = m
	}
	if v.UID != nil {
		uid = *v.UID
	}
	if v.GID != nil {
		gid = *v.GID
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("volume %q: %w", v.Name, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("volume %q: %w", v.Name, err)
	}
	// chown before chmod: chown clears the setuid and setgid bits.
	if err := os.Chown(dir, uid, gid); err != nil {
		return "", fmt.Errorf("volume %q: %w", v.Name, err)
	}
	if err := unix.Chmod(dir, uint32(mode)); err != nil {
		return "", fmt.Errorf("volume %q: chmod %s: %w", v.Name, dir, err)
	}
	return dir, nil
}

// dnsMounts gives the binds for /etc/resolv.conf and /etc/hosts per
// --dns-conf-mode: "host" binds the host's file, "stage0" the pod-level
// file stage0 wrote in the stage1 rootfs; "none" and "default" keep the
// image's (for hosts, "default" adds a localhost-only file when the image
// has none, as rkt fly did).
func dnsMounts(podDir, rootfs string, resolvMode, hostsMode string) ([]bind, error) {
	var out []bind
	s1etc := filepath.Join(stage1RootfsPath(podDir), "etc")
	for _, f := range []struct{ mode, file, stage0 string }{
		{resolvMode, "/etc/resolv.conf", "rkt-resolv.conf"},
		{hostsMode, "/etc/hosts", "rkt-hosts"},
	} {
		var src string
		switch f.mode {
		case "host":
			src = f.file
		case "stage0":
			src = filepath.Join(s1etc, f.stage0)
		default:
			continue
		}
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("%s (dns-conf-mode %s): %w", f.file, f.mode, err)
		}
		out = append(out, bind{what: f.file, source: src, target: f.file, flags: unix.MS_BIND, readOnly: true, file: true})
	}
	if hostsMode == "" || hostsMode == "default" {
		p, err := secureJoin(rootfs, "/etc/hosts")
		if err != nil {
			return nil, fmt.Errorf("/etc/hosts: %w", err)
		}
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, fmt.Errorf("/etc/hosts: %w", err)
			}
			if err := os.WriteFile(p, []byte("127.0.0.1 localhost localdomain\n::1 localhost\n"), 0o644); err != nil {
				return nil, fmt.Errorf("/etc/hosts: %w", err)
			}
		}
	}
	return out, nil
}

// mount makes b in the app rootfs, creating a missing target (directory,
// or empty file for a file source) with mode 0755 / 0644, owned by root.
func (b bind) mount(rootfs string) error {
	target, err := secureJoin(rootfs, b.target)
	if err != nil {
		return fmt.Errorf("%s: target %s: %w", b.what, b.target, err)
	}
	st, err := os.Stat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("%s: creating target %s: %w", b.what, b.target, err)
		}
		if b.file {
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("%s: creating target %s: %w", b.what, b.target, err)
			}
			f.Close()
		} else if err := os.Mkdir(target, 0o755); err != nil {
			return fmt.Errorf("%s: creating target %s: %w", b.what, b.target, err)
		}
	case err != nil:
		return fmt.Errorf("%s: target %s: %w", b.what, b.target, err)
	case b.flags&unix.MS_BIND != 0 && st.IsDir() == b.file:
		kind := "a directory"
		if b.file {
			kind = "a file"
		}
		return fmt.Errorf("%s: target %s in the image is not %s like the source %s", b.what, b.target, kind, b.source)
	}
	if err := mountinfo.Mount(b.source, target, b.fstype, b.flags, ""); err != nil {
		return fmt.Errorf("%s: %w", b.what, err)
	}
	if b.readOnly {
		if err := makeReadOnly(target, b.flags&unix.MS_REC != 0); err != nil {
			return fmt.Errorf("%s: %w", b.what, err)
		}
	}
	return nil
}

// makeReadOnly makes the mount at target read-only, with every mount below
// it when recursive. mount_setattr(2) changes only the read-only attribute
// (a bind remount would also reset nosuid/nodev/noexec) and covers a whole
// tree in one call.
func makeReadOnly(target string, recursive bool) error {
	var flags uint
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	err := unix.MountSetattr(unix.AT_FDCWD, target, flags, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	if err == nil {
		return nil
	}
	if err != unix.ENOSYS {
		return &mountinfo.MountError{Op: "setattr", Target: target, Data: "MOUNT_ATTR_RDONLY", Err: err}
	}
	// Kernels before 5.12: remount each mount, keeping its flags.
	targets := []string{target}
	if recursive {
		infos, err := mountinfo.Read()
		if err != nil {
			return err
		}
		targets = targets[:0]
		for _, in := range mountinfo.Under(infos, target) {
			targets = append(targets, in.MountPoint)
		}
	}
	for _, t := range targets {
		var sfs unix.Statfs_t
		if err := unix.Statfs(t, &sfs); err != nil {
			return fmt.Errorf("statfs %s: %w", t, err)
		}
		keep := uintptr(sfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
		if err := mountinfo.Mount("", t, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|keep, ""); err != nil {
			return err
		}
	}
	return nil
}
