package cgroups

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rktng/rkt/tests/testutil/asroot"
)

func TestScopeName(t *testing.T) {
	for in, want := range map[string]string{
		"rkt-0a1b-2c": `machine-rkt\x2d0a1b\x2d2c.scope`,
		"a.b":         "machine-a.b.scope",
		".x":          `machine-\x2ex.scope`,
	} {
		if got := ScopeName(in); got != want {
			t.Errorf("ScopeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestV1Key(t *testing.T) {
	paths := map[string]string{"cpu,cpuacct": "/", "name=systemd": "/", "memory": "/x", "": "/"}
	for super, want := range map[string]string{
		"rw,cpu,cpuacct":        "cpu,cpuacct",
		"rw,xattr,name=systemd": "name=systemd",
		"rw,memory":             "memory",
		"rw,pids":               "",
	} {
		if got := v1Key(super, paths); got != want {
			t.Errorf("v1Key(%q) = %q, want %q", super, got, want)
		}
	}
}

func TestHierarchiesOfThisProcess(t *testing.T) {
	hs, err := Hierarchies(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) == 0 {
		t.Skip("no cgroup hierarchy mounted")
	}
	for _, h := range hs {
		if _, err := os.Stat(filepath.Join(h.Mount, h.Path)); err != nil {
			t.Errorf("hierarchy %+v: own cgroup not found: %v", h, err)
		}
	}
}

// TestJoinAndRelease moves a child process's view: it joins a scope in every
// hierarchy from a re-executed test binary and checks Release removes it.
func TestJoinAndRelease(t *testing.T) {
	asroot.Require(t, "creates cgroups")
	if os.Getenv("CGROUPS_TEST_CHILD") == "1" {
		pl, err := Join(ScopeName("rkt-cgroups-test"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(os.Getenv("CGROUPS_TEST_OUT"), []byte(joinLines(pl.Dirs)), 0o644)
		return
	}
	out := filepath.Join(t.TempDir(), "dirs")
	cmd := testChild(t, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	dirs := splitLines(string(b))
	if len(dirs) == 0 {
		t.Fatal("no cgroups joined")
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("joined cgroup %s missing: %v", d, err)
		}
	}
	if err := Release(dirs); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left behind", d)
		}
	}
	if err := Release(dirs); err != nil {
		t.Errorf("second Release: %v", err)
	}
}
