package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rktng/rkt/stage2/isolators"
)

// ErrNoController is wrapped when a limit is asked for and no mounted
// hierarchy has the controller that enforces it.
var ErrNoController = errors.New("cgroup controller not available")

// cfsPeriod is the CFS period quotas are expressed in (100 ms, the
// kernel's and systemd's default).
const cfsPeriod = 100000

// AppCgroup is one app cgroup made by AppCgroups.
type AppCgroup struct {
	// Key is the hierarchy's key ("memory", "cpu,cpuacct").
	Key string
	Dir string
}

// isV1Controller is whether h is a v1 hierarchy with resource controllers
// (not a named one such as name=systemd).
func isV1Controller(h Hierarchy) bool {
	return h.Key != "" && !strings.HasPrefix(h.Key, "name=")
}

func hasController(h Hierarchy, c string) bool {
	if h.Key == "" {
		return v2Has(filepath.Join(h.Mount, h.Path), c)
	}
	for _, k := range strings.Split(h.Key, ",") {
		if k == c {
			return true
		}
	}
	return false
}

// v2Has reads dir's cgroup.controllers: what dir's children may enable.
func v2Has(dir, c string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return false
	}
	for _, f := range strings.Fields(string(b)) {
		if f == c {
			return true
		}
	}
	return false
}

func controllers(l isolators.Limits) []string {
	var out []string
	if l.MemoryBytes > 0 {
		out = append(out, "memory")
	}
	if l.CPUMilli > 0 || l.CPUShares > 0 {
		out = append(out, "cpu")
	}
	return out
}

// AppCgroups creates rel (e.g. system.slice/APP.service) below each v1
// controller hierarchy's cgroup in hs (the pod's, once Join has run) and
// writes l where the controller is. Every v1 controller gets the cgroup,
// limited or not, so that the app's place is the same in all of them.
// cgroup2 is left to the pod's systemd, which owns that subtree. A limit
// no v1 hierarchy can enforce is an error wrapping ErrNoController.
func AppCgroups(hs []Hierarchy, rel string, l isolators.Limits) ([]AppCgroup, error) {
	for _, c := range controllers(l) {
		found := false
		for _, h := range hs {
			found = found || (isV1Controller(h) && hasController(h, c))
		}
		if !found {
			return nil, fmt.Errorf("app limit on %s: no v1 %s hierarchy: %w", c, c, ErrNoController)
		}
	}
	var out []AppCgroup
	parts := strings.Split(filepath.Clean(rel), "/")
	for _, h := range hs {
		if !isV1Controller(h) {
			continue
		}
		if err := mkdirs(h, parts); err != nil {
			return nil, err
		}
		dir := filepath.Join(h.Mount, h.Path, rel)
		if err := writeV1(h, dir, l); err != nil {
			return nil, err
		}
		out = append(out, AppCgroup{Key: h.Key, Dir: dir})
	}
	return out, nil
}

// SetLimits writes l on the caller's cgroup in hs (the pod's): in v1
// where a v1 hierarchy has the controller, else in cgroup2, enabling the
// controller for the pod's cgroup in its parent.
func SetLimits(hs []Hierarchy, l isolators.Limits) error {
	for _, c := range controllers(l) {
		done := false
		for _, h := range hs {
			if isV1Controller(h) && hasController(h, c) {
				if err := writeV1(h, filepath.Join(h.Mount, h.Path), only(l, c)); err != nil {
					return err
				}
				done = true
			}
		}
		if done {
			continue
		}
		for _, h := range hs {
			if h.Key != "" {
				continue
			}
			dir := filepath.Join(h.Mount, h.Path)
			parent := filepath.Dir(dir)
			if !v2Has(parent, c) {
				break
			}
			if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
				return fmt.Errorf("enabling %s for %s: %w", c, dir, err)
			}
			if err := WriteV2(dir, only(l, c)); err != nil {
				return err
			}
			done = true
		}
		if !done {
			return fmt.Errorf("pod limit on %s: %w", c, ErrNoController)
		}
	}
	return nil
}

func only(l isolators.Limits, c string) isolators.Limits {
	switch c {
	case "memory":
		return isolators.Limits{MemoryBytes: l.MemoryBytes}
	case "cpu":
		return isolators.Limits{CPUMilli: l.CPUMilli, CPUShares: l.CPUShares}
	}
	return isolators.Limits{}
}

func writeV1(h Hierarchy, dir string, l isolators.Limits) error {
	var files [][2]string
	if l.MemoryBytes > 0 && hasController(h, "memory") {
		files = append(files, [2]string{"memory.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10)})
	}
	if hasController(h, "cpu") {
		if l.CPUMilli > 0 {
			files = append(files,
				[2]string{"cpu.cfs_period_us", strconv.Itoa(cfsPeriod)},
				[2]string{"cpu.cfs_quota_us", strconv.FormatInt(quota(l.CPUMilli), 10)})
		}
		if l.CPUShares > 0 {
			files = append(files, [2]string{"cpu.shares", strconv.FormatInt(l.CPUShares, 10)})
		}
	}
	return writeFiles(dir, files)
}

// WriteV2 writes l in the cgroup2 directory dir: memory.max, cpu.max and
// cpu.weight (shares mapped to weights as systemd and runc map them).
func WriteV2(dir string, l isolators.Limits) error {
	var files [][2]string
	if l.MemoryBytes > 0 {
		files = append(files, [2]string{"memory.max", strconv.FormatInt(l.MemoryBytes, 10)})
	}
	if l.CPUMilli > 0 {
		files = append(files, [2]string{"cpu.max", fmt.Sprintf("%d %d", quota(l.CPUMilli), cfsPeriod)})
	}
	if l.CPUShares > 0 {
		files = append(files, [2]string{"cpu.weight", strconv.FormatInt(SharesToWeight(l.CPUShares), 10)})
	}
	return writeFiles(dir, files)
}

// SharesToWeight maps v1 cpu.shares (2..262144) onto v2 cpu.weight
// (1..10000).
func SharesToWeight(shares int64) int64 {
	shares = min(max(shares, 2), 262144)
	return 1 + (shares-2)*9999/262142
}

// quota is the CFS quota for milli thousandths of a CPU; the kernel
// refuses quotas under 1 ms.
func quota(milli int64) int64 {
	return max(milli*cfsPeriod/1000, 1000)
}

func writeFiles(dir string, files [][2]string) error {
	for _, f := range files {
		p := filepath.Join(dir, f[0])
		if err := os.WriteFile(p, []byte(f[1]), 0); err != nil {
			return fmt.Errorf("setting %s to %s: %w", p, f[1], err)
		}
	}
	return nil
}

// Delegate gives uid (the pod's root under --private-users) the v1 cgroup
// dir: its app's stage2 moves itself in as that uid.
func Delegate(dir string, uid int) error {
	for _, f := range []string{"", "cgroup.procs", "tasks"} {
		if err := os.Lchown(filepath.Join(dir, f), uid, uid); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delegating cgroup %s: %w", dir, err)
		}
	}
	return nil
}
