package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/rktng/rkt/aci/archive"
)

func TestMkaci(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "bin", "app"), []byte("app"), 0o755)
	manifest := filepath.Join(dir, "manifest.json")
	os.WriteFile(manifest, []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/mk",
		"annotations":[{"name":"coreos.com/rkt/stage1/run","value":"/bin/app"}]}`), 0o644)
	out := filepath.Join(dir, "out.aci")

	if err := run([]string{"--manifest", manifest, "--rootfs", rootfs, "--gzip", out}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rc, kind, err := archive.NewReaderKind(f)
	if err != nil || kind != archive.Gzip {
		t.Fatalf("output: %v %v", kind, err)
	}
	img, err := archive.Validate(rc)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := img.Manifest.Annotations.Get("coreos.com/rkt/stage1/run"); v != "/bin/app" {
		t.Errorf("annotation lost: %+v", img.Manifest)
	}

	// Failures leave the previous output alone and no temporary file.
	before, _ := os.ReadFile(out)
	os.WriteFile(manifest, []byte(`{"acKind":"PodManifest"}`), 0o644)
	if err := run([]string{"--manifest", manifest, "--rootfs", rootfs, out}); err == nil {
		t.Fatal("an invalid manifest was accepted")
	}
	if err := run([]string{"--rootfs", rootfs, out}); err == nil {
		t.Fatal("a missing --manifest was accepted")
	}
	os.WriteFile(manifest, []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/mk"}`), 0o644)
	if err := run([]string{"--manifest", manifest, "--rootfs", filepath.Join(dir, "missing"), out}); err == nil {
		t.Fatal("a missing rootfs was accepted")
	}
	after, _ := os.ReadFile(out)
	if !bytes.Equal(before, after) {
		t.Errorf("a failed run changed the output")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("leftovers in %s: %v", dir, entries)
	}
}
