package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/rktng/rkt/common/stage1"
)

// The manifests carry the contract's annotations, at its interface version.
func TestManifests(t *testing.T) {
	for name, want := range map[string]map[string]string{
		"fly":  {stage1.AnnRun: "/run", stage1.AnnEnter: "/enter", stage1.AnnStop: "/stop", stage1.AnnGC: "/gc"},
		"host": {stage1.AnnRun: "/init", stage1.AnnEnter: "/enter", stage1.AnnStop: "/stop", stage1.AnnGC: "/gc", stage1.AnnSystemdVersion: "252"},
	} {
		f := flavors[name]
		var extra map[string]string
		if name == "host" {
			extra = map[string]string{stage1.AnnSystemdVersion: "252"}
		}
		m, err := manifest(f, extra)
		if err != nil {
			t.Fatal(err)
		}
		want[stage1.AnnInterfaceVersion] = strconv.Itoa(stage1.InterfaceVersion)
		got := map[string]string{}
		for _, a := range m.Annotations {
			got[string(a.Name)] = a.Value
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: annotations %v, want %v", name, got, want)
		}
		if string(m.Name) != f.name {
			t.Errorf("%s: name %s", name, m.Name)
		}
		for _, l := range []string{"version", "os", "arch"} {
			if v, ok := m.Labels.Get(l); !ok || v == "" {
				t.Errorf("%s: label %s missing", name, l)
			}
		}
	}
}

// fly's rootfs: the entrypoints link to /fly, and the contract's
// directories are there.
func TestLayoutFly(t *testing.T) {
	rootfs := t.TempDir()
	if err := layoutFly(rootfs); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"run", "enter", "stop", "gc"} {
		if l, err := os.Readlink(filepath.Join(rootfs, e)); err != nil || l != "fly" {
			t.Errorf("/%s -> %q, %v; want fly", e, l, err)
		}
	}
	for _, d := range []string{stage1.StatusDir, stage1.EnvDir} {
		if fi, err := os.Stat(filepath.Join(rootfs, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
}

func TestLddPaths(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibsystemd-shared-252.so => /usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so (0x00007f)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n" +
		"\tlibmissing.so => not found\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n"
	want := []string{"/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if got := lddPaths([]byte(out)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The build ID follows the Go sources rkt and the stage1s are built from,
// and nothing else.
func TestSourceID(t *testing.T) {
	src := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id := func() string {
		t.Helper()
		v, err := sourceID(src)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	write("go.mod", "module x\n")
	write("stage1-fly/fly/run.go", "package fly\n")
	first := id()
	if first != id() {
		t.Fatal("build ID not deterministic")
	}
	// Not sources of a build: tests, VCS data, build.sh's output, docs.
	write("stage1-fly/fly/run_test.go", "package fly\n")
	write(".git/objects/x.go", "x")
	write("build/tmp/gen.go", "x")
	write("README.md", "x")
	if got := id(); got != first {
		t.Fatalf("build ID changed with a non-source file: %s, was %s", got, first)
	}
	for _, rel := range []string{"stage1-fly/fly/run.go", "go.sum", "stage0/new.go"} {
		write(rel, "package changed\n")
		if got := id(); got == first {
			t.Fatalf("build ID unchanged after writing %s", rel)
		} else {
			first = got
		}
	}
}
