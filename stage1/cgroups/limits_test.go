package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rktng/rkt/stage2/isolators"
)

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// A fake cgroupfs: plain directories, where writes land in plain files.
func TestLimitsOnFakeTrees(t *testing.T) {
	root := t.TempDir()
	mem := Hierarchy{Mount: filepath.Join(root, "memory"), Key: "memory", Path: "/pod"}
	cpu := Hierarchy{Mount: filepath.Join(root, "cpu,cpuacct"), Key: "cpu,cpuacct", Path: "/pod"}
	sysd := Hierarchy{Mount: filepath.Join(root, "systemd"), Key: "name=systemd", Path: "/pod"}
	for _, h := range []Hierarchy{mem, cpu, sysd} {
		os.MkdirAll(filepath.Join(h.Mount, h.Path), 0o755)
	}
	l := isolators.Limits{MemoryBytes: 50 << 20, CPUMilli: 200, CPUShares: 512}
	cgs, err := AppCgroups([]Hierarchy{mem, cpu, sysd}, "system.slice/a.service", l)
	if err != nil {
		t.Fatal(err)
	}
	if len(cgs) != 2 {
		t.Errorf("app cgroups %v, want memory and cpu only", cgs)
	}
	d := filepath.Join(mem.Mount, "pod/system.slice/a.service")
	if read(t, filepath.Join(d, "memory.limit_in_bytes")) != "52428800" {
		t.Error("memory limit not written")
	}
	c := filepath.Join(cpu.Mount, "pod/system.slice/a.service")
	if read(t, filepath.Join(c, "cpu.cfs_quota_us")) != "20000" || read(t, filepath.Join(c, "cpu.cfs_period_us")) != "100000" || read(t, filepath.Join(c, "cpu.shares")) != "512" {
		t.Error("cpu limits not written")
	}
	if _, err := AppCgroups([]Hierarchy{cpu}, "x", isolators.Limits{MemoryBytes: 1}); !errors.Is(err, ErrNoController) {
		t.Errorf("memory limit without a memory hierarchy: %v", err)
	}

	// cgroup2 only: the pod's limits go to memory.max/cpu.max/cpu.weight,
	// after enabling the controllers in the parent.
	v2 := Hierarchy{Mount: filepath.Join(root, "unified"), Key: "", Path: "/machine.slice/pod"}
	pod := filepath.Join(v2.Mount, v2.Path)
	os.MkdirAll(pod, 0o755)
	os.WriteFile(filepath.Join(filepath.Dir(pod), "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644)
	if err := SetLimits([]Hierarchy{v2}, l); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(pod, "memory.max")) != "52428800" || read(t, filepath.Join(pod, "cpu.max")) != "20000 100000" ||
		read(t, filepath.Join(pod, "cpu.weight")) != "20" {
		t.Error("v2 limits not written")
	}
	if read(t, filepath.Join(filepath.Dir(pod), "cgroup.subtree_control")) != "+cpu" {
		t.Error("controller not enabled in the parent")
	}
	// Hybrid without v2 controllers (this machine): a pod limit goes to v1.
	os.WriteFile(filepath.Join(filepath.Dir(pod), "cgroup.controllers"), []byte("hugetlb\n"), 0o644)
	if err := SetLimits([]Hierarchy{v2, mem}, isolators.Limits{MemoryBytes: 4096}); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(mem.Mount, "pod/memory.limit_in_bytes")) != "4096" {
		t.Error("hybrid pod limit not in v1")
	}
	if err := SetLimits([]Hierarchy{v2}, isolators.Limits{MemoryBytes: 4096}); !errors.Is(err, ErrNoController) {
		t.Errorf("no memory controller anywhere: %v", err)
	}
	if SharesToWeight(1024) != 39 || SharesToWeight(2) != 1 || SharesToWeight(262144) != 10000 {
		t.Error("shares to weight")
	}
}
