package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rktng/rkt/common/stage1"
)

// assembleHost lays out stage1-host's rootfs, the pod's "machine", and
// returns the systemd-version annotation (the run entrypoint compares it
// with the host's nspawn).
func assembleHost(src, rootfs, tmp string) (map[string]string, error) {
	systemd, err := firstExecutable("/usr/lib/systemd/systemd", "/lib/systemd/systemd")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(tmp, "bin")
	for name, pkg := range map[string]string{"stage1-host": "./stage1/host", "stage2": "./stage2/cmd/stage2"} {
		if err := goBuild(src, filepath.Join(bin, name), pkg); err != nil {
			return nil, err
		}
	}
	if err := hostSkeleton(rootfs); err != nil {
		return nil, err
	}
	if err := copyWithLibs(rootfs, systemd, "usr/lib/systemd/systemd"); err != nil {
		return nil, err
	}
	for _, b := range []string{"systemd-journald", "systemd-shutdown"} {
		if err := copyWithLibs(rootfs, filepath.Join(filepath.Dir(systemd), b), "usr/lib/systemd/"+b); err != nil {
			return nil, err
		}
	}
	for _, b := range []string{"systemctl", "journalctl"} {
		p, err := firstExecutable("/usr/bin/"+b, "/bin/"+b)
		if err != nil {
			return nil, err
		}
		if err := copyWithLibs(rootfs, p, "usr/bin/"+b); err != nil {
			return nil, err
		}
	}
	// Without a cache the loader still finds libraries through its
	// default paths, but a cache saves a few stats per exec on every unit
	// start.
	if ldconfig, err := exec.LookPath("ldconfig"); err == nil {
		if err := os.MkdirAll(filepath.Join(rootfs, "etc/ld.so.conf.d"), 0o755); err != nil {
			return nil, err
		}
		_ = exec.Command(ldconfig, "-r", rootfs).Run()
	}
	if err := hostUnits(src, rootfs); err != nil {
		return nil, err
	}
	if err := hostEtc(rootfs); err != nil {
		return nil, err
	}
	for _, name := range []string{"stage1-host", "stage2"} {
		if err := copyFile(filepath.Join(bin, name), filepath.Join(rootfs, "usr/lib/rkt", name), 0o755); err != nil {
			return nil, err
		}
	}
	// The entrypoints: one binary, dispatched on the name it is run as.
	for _, e := range hostEntrypoints {
		if err := os.Symlink("usr/lib/rkt/stage1-host", filepath.Join(rootfs, strings.TrimPrefix(e, "/"))); err != nil {
			return nil, err
		}
	}
	if err := cniPlugins(src, filepath.Join(rootfs, "usr/lib/rkt/plugins/net")); err != nil {
		return nil, err
	}
	out, err := exec.Command(systemd, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", systemd, err)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 2 {
		return nil, fmt.Errorf("%s --version: %q", systemd, out)
	}
	return map[string]string{stage1.AnnSystemdVersion: fields[1]}, nil
}

// hostSkeleton: the directories of a merged-/usr root, and those of the
// contract.
func hostSkeleton(rootfs string) error {
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "var/log/journal", "run", "tmp", "proc", "sys", "dev", "opt/stage2", "rkt/stage2", "usr/lib/rkt"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(rootfs, l)); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777|os.ModeSticky); err != nil {
		return err
	}
	return contractDirs(rootfs)
}

// hostUnits: the static units of stage1/units (the per-pod ones are
// written by the run entrypoint into etc/systemd/system).
func hostUnits(src, rootfs string) error {
	units := filepath.Join(src, "stage1", "units")
	sys := filepath.Join(rootfs, "usr/lib/systemd/system")
	if err := os.MkdirAll(filepath.Join(sys, "default.target.wants"), 0o755); err != nil {
		return err
	}
	for _, pattern := range []string{"*.target", "*.service", "*.socket"} {
		matches, err := filepath.Glob(filepath.Join(units, pattern))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := copyFile(m, filepath.Join(sys, filepath.Base(m)), 0o644); err != nil {
				return err
			}
		}
	}
	// supervisor-ready.service is wanted by whatever default.target the
	// pod's units define (.wants directories merge across unit paths).
	if err := os.Symlink("../supervisor-ready.service", filepath.Join(sys, "default.target.wants/supervisor-ready.service")); err != nil {
		return err
	}
	for _, conf := range []string{"journald.conf", "system.conf"} {
		if err := copyFile(filepath.Join(units, conf), filepath.Join(rootfs, "etc/systemd", conf), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func hostEtc(rootfs string) error {
	if err := copyFile("/usr/lib/os-release", filepath.Join(rootfs, "usr/lib/os-release"), 0o644); err != nil {
		return err
	}
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(rootfs, "etc/os-release")); err != nil {
		return err
	}
	for name, content := range map[string]string{
		"machine-id": "",
		"passwd":     "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"group":      "root:x:0:\nsystemd-journal:x:101:\nnogroup:x:65534:\n",
		"fstab":      "",
	} {
		if err := os.WriteFile(filepath.Join(rootfs, "etc", name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copyWithLibs copies the executable src to dest (a path in rootfs) and
// every library ldd lists for it to the same path as on the host.
func copyWithLibs(rootfs, src, dest string) error {
	if err := copyFile(src, filepath.Join(rootfs, dest), 0); err != nil {
		return err
	}
	out, err := exec.Command("ldd", src).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", src, err)
	}
	for _, lib := range lddPaths(out) {
		if _, err := os.Stat(lib); err != nil {
			continue
		}
		dst := filepath.Join(rootfs, lib)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := copyFile(lib, dst, 0); err != nil {
			return err
		}
	}
	return nil
}

// lddPaths reads ldd's output: "name => /path (addr)" and the loader's
// "\t/path (addr)".
func lddPaths(out []byte) []string {
	var paths []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			paths = append(paths, f[2])
		case len(f) >= 2 && strings.HasPrefix(f[0], "/") && strings.HasPrefix(f[1], "("):
			paths = append(paths, f[0])
		}
	}
	return paths
}

// cniPlugins builds the CNI plugins of stage1/cni-plugins.txt (a "module
// version" line, then plugin paths) from the module proxy at the pinned
// version, as rkt shipped them in its stage1; the go command checks them
// against the checksum database.
func cniPlugins(src, dir string) error {
	b, err := os.ReadFile(filepath.Join(src, "stage1", "cni-plugins.txt"))
	if err != nil {
		return err
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 {
		return errors.New("stage1/cni-plugins.txt: want a module line and plugins")
	}
	mod := strings.Fields(lines[0])
	if len(mod) != 2 {
		return fmt.Errorf("stage1/cni-plugins.txt: %q is not \"module version\"", lines[0])
	}
	cmd := exec.Command("go", "mod", "download", "-json", mod[0]+"@"+mod[1])
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go mod download %s@%s: %w", mod[0], mod[1], err)
	}
	var dl struct{ Dir string }
	if err := json.Unmarshal(out, &dl); err != nil || dl.Dir == "" {
		return fmt.Errorf("go mod download %s@%s: no module directory (%v)", mod[0], mod[1], err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", dir + "/"}
	for _, p := range lines[1:] {
		args = append(args, "./plugins/"+p)
	}
	build := exec.Command("go", args...)
	build.Dir = dl.Dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the CNI plugins: %v\n%s", err, b)
	}
	return nil
}

func firstExecutable(paths ...string) (string, error) {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %s exists (apt-get install systemd)", strings.Join(paths, ", "))
}

// copyFile copies src (following symlinks) to dst with mode (0: src's, as
// cp -L), creating dst's directory.
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if mode == 0 {
		fi, err := in.Stat()
		if err != nil {
			return err
		}
		mode = fi.Mode().Perm()
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}
