// Package cgroups gives a pod its own cgroup in every mounted hierarchy
// (cgroup v1 controllers, name=systemd and cgroup2) and takes it back.
//
// The pod's cgroup is created below the cgroup the launcher was started in,
// as machine.slice/machine-<name>.scope: nspawn with --keep-unit and
// machined both want a scope-shaped name, and staying below the caller's
// cgroup keeps a pod inside the limits of whoever started rkt (a systemd
// unit, a job scheduler). Without its own cgroup every pod would share
// nspawn's payload/supervisor cgroups and pods would kill each other's
// processes.
package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rktng/rkt/common/mountinfo"
)

// Slice is the parent of every pod's scope.
const Slice = "machine.slice"

// ListFile (in the pod directory) lists the pod's cgroup directories, one
// per line: the run entrypoint writes it, enter joins them, gc releases
// them.
const ListFile = "cgroups"

// Hierarchy is one mounted cgroup hierarchy and the caller's place in it.
type Hierarchy struct {
	Mount string // mount point, e.g. /sys/fs/cgroup/memory
	// Key identifies the hierarchy in /proc/PID/cgroup: the controller
	// list ("memory", "name=systemd"), or "" for cgroup2.
	Key  string
	Path string // the process's cgroup in it, e.g. /
}

// ScopeName is the systemd scope unit of a machine: machine-NAME.scope
// with NAME escaped as systemd escapes unit name parts ("-" is \x2d).
func ScopeName(machine string) string {
	var b strings.Builder
	for i := 0; i < len(machine); i++ {
		c := machine[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return "machine-" + b.String() + ".scope"
}

// Hierarchies lists the cgroup hierarchies mounted in the caller's mount
// namespace with pid's place in each.
func Hierarchies(pid int) ([]Hierarchy, error) {
	paths, err := procCgroups(pid)
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("listing cgroup mounts: %w", err)
	}
	defer f.Close()
	var out []Hierarchy
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(fields) < sep+4 {
			continue
		}
		fstype, super := fields[sep+1], fields[sep+3]
		var key string
		switch fstype {
		case "cgroup2":
			key = ""
		case "cgroup":
			key = v1Key(super, paths)
			if key == "" {
				continue
			}
		default:
			continue
		}
		p, ok := paths[key]
		if !ok || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, Hierarchy{Mount: mountinfo.Unescape(fields[4]), Key: key, Path: p})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("listing cgroup mounts: %w", err)
	}
	return out, nil
}

// v1Key finds which /proc/PID/cgroup entry a v1 mount's super options
// (rw,memory or rw,name=systemd or rw,cpu,cpuacct) belong to.
func v1Key(super string, paths map[string]string) string {
	opts := map[string]bool{}
	for _, o := range strings.Split(super, ",") {
		opts[o] = true
	}
	for key := range paths {
		if key == "" {
			continue
		}
		all := true
		for _, c := range strings.Split(key, ",") {
			if !opts[c] {
				all = false
				break
			}
		}
		if all {
			return key
		}
	}
	return ""
}

func procCgroups(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, fmt.Errorf("reading cgroups of %d: %w", pid, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		out[parts[1]] = parts[2]
	}
	return out, nil
}

// Placement is where Join put the process.
type Placement struct {
	// Dirs are the pod's cgroup directories, one per hierarchy.
	Dirs []string
	// Subcgroup is the pod's cgroup below the root of the name=systemd
	// hierarchy (cgroup2 on a unified host), without a leading slash: the
	// pod directory's subcgroup file.
	Subcgroup string
}

// Join moves the calling process into Slice/scope below its current cgroup
// in every hierarchy, creating the directories.
func Join(scope string) (Placement, error) {
	var pl Placement
	hs, err := Hierarchies(os.Getpid())
	if err != nil {
		return pl, err
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	var unified string
	for _, h := range hs {
		rel := filepath.Join(h.Path, Slice, scope)
		dir := filepath.Join(h.Mount, rel)
		if err := mkdirs(h, []string{Slice, scope}); err != nil {
			return pl, err
		}
		pl.Dirs = append(pl.Dirs, dir)
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0); err != nil {
			return pl, fmt.Errorf("moving into cgroup %s: %w", dir, err)
		}
		switch h.Key {
		case "name=systemd":
			pl.Subcgroup = strings.TrimPrefix(rel, "/")
		case "":
			unified = strings.TrimPrefix(rel, "/")
		}
	}
	if pl.Subcgroup == "" {
		pl.Subcgroup = unified
	}
	return pl, nil
}

// mkdirs creates parts below h's path one by one, so that a new cpuset
// cgroup gets its parent's cpus and mems (an empty one refuses tasks), and
// retries when a concurrent Release removes the shared slice between two
// steps.
func mkdirs(h Hierarchy, parts []string) error {
	for attempt := 0; ; attempt++ {
		err := mkdirsOnce(h, parts)
		if err == nil || !errors.Is(err, os.ErrNotExist) || attempt == 5 {
			return err
		}
	}
}

func mkdirsOnce(h Hierarchy, parts []string) error {
	dir := filepath.Join(h.Mount, h.Path)
	cpuset := strings.Contains(","+h.Key+",", ",cpuset,")
	for _, p := range parts {
		parent := dir
		dir = filepath.Join(dir, p)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		if cpuset {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				cur, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					return fmt.Errorf("creating cgroup %s: %w", dir, err)
				}
				if strings.TrimSpace(string(cur)) != "" {
					continue
				}
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err != nil {
					return fmt.Errorf("creating cgroup %s: %w", dir, err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0); err != nil {
					return fmt.Errorf("creating cgroup %s: setting %s: %w", dir, f, err)
				}
			}
		}
	}
	return nil
}

// Release kills whatever is left in dirs (and below), removes them deepest
// first, then removes their parent slice if no other pod uses it. Missing
// directories are not an error: Release may be retried.
func Release(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			continue
		}
		kill(d)
	}
	for _, d := range dirs {
		if err := removeTree(d); err != nil {
			errs = append(errs, err)
			continue
		}
		if filepath.Base(filepath.Dir(d)) == Slice {
			_ = syscall.Rmdir(filepath.Dir(d)) // busy when another pod runs
		}
	}
	return errors.Join(errs...)
}

// kill ends every process below d: at once with cgroup.kill where the
// kernel has it, else one SIGKILL per process.
func kill(d string) {
	if err := os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0); err == nil {
		return
	}
	_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return nil
	})
}

// removeTree removes the cgroup d and its children. A cgroup whose last
// process is still exiting refuses rmdir with EBUSY for a moment; the
// kernel has no event for "empty" on v1, so this retries for up to 2 s.
func removeTree(d string) error {
	var dirs []string
	_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	deadline := time.Now().Add(2 * time.Second)
	for i := len(dirs) - 1; i >= 0; i-- {
		for {
			err := syscall.Rmdir(dirs[i])
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				return fmt.Errorf("removing cgroup %s: %w", dirs[i], err)
			}
			kill(dirs[i])
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}
