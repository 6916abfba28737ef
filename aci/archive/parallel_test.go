package archive

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAsyncWriteError: an error writing a small file (here an xattr too
// large for any file system) comes back from a later Entry or from Close,
// naming that file, not the entry being read when it surfaced.
func TestAsyncWriteError(t *testing.T) {
	dst := t.TempDir()
	x, err := NewExtractor(dst)
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string, pax map[string]string) error {
		return x.Entry(&Entry{Name: name, Header: &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, PAXRecords: pax},
			Body: strings.NewReader("x")})
	}
	if err := x.Entry(&Entry{Name: "rootfs", Header: &tar.Header{Name: "rootfs", Typeflag: tar.TypeDir, Mode: 0o755}}); err != nil {
		t.Fatal(err)
	}
	err = file("rootfs/bad", map[string]string{"SCHILY.xattr.user.big": strings.Repeat("x", 1<<17)})
	for i := 0; err == nil && i < 1000; i++ {
		err = file(fmt.Sprintf("rootfs/f%d", i), nil)
	}
	if cerr := x.Close(); err == nil {
		err = cerr
	}
	if err == nil || !strings.Contains(err.Error(), `"rootfs/bad"`) || strings.Contains(err.Error(), `"rootfs/f`) {
		t.Fatalf("error = %v, want one naming rootfs/bad only", err)
	}
}

// TestAsyncManySmallFiles: small files written by the workers end up whole,
// with their modes and times, including ones replaced by a later entry of
// the same name and ones linked to while still queued.
func TestAsyncManySmallFiles(t *testing.T) {
	dst := t.TempDir()
	x, err := NewExtractor(dst)
	if err != nil {
		t.Fatal(err)
	}
	add := func(h *tar.Header, data string) {
		t.Helper()
		h.Size = int64(len(data))
		if err := x.Entry(&Entry{Name: h.Name, Header: h, Body: strings.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Name: "rootfs", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	const n = 500
	for i := range n {
		add(&tar.Header{Name: fmt.Sprintf("rootfs/d%d/f%d", i%7, i), Typeflag: tar.TypeReg, Mode: 0o640}, strings.Repeat(fmt.Sprint(i), i))
		if i%50 == 0 {
			add(&tar.Header{Name: fmt.Sprintf("rootfs/l%d", i), Typeflag: tar.TypeLink, Linkname: fmt.Sprintf("rootfs/d%d/f%d", i%7, i)}, "")
			add(&tar.Header{Name: fmt.Sprintf("rootfs/d%d/f%d", (i+6)%7, i-1), Typeflag: tar.TypeReg, Mode: 0o600}, "again")
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p := filepath.Join(dst, fmt.Sprintf("rootfs/d%d/f%d", i%7, i))
		want, mode := strings.Repeat(fmt.Sprint(i), i), os.FileMode(0o640)
		if (i+1)%50 == 0 && i+1 < n {
			want, mode = "again", 0o600
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Fatalf("%s: %q, %v; want %q", p, got, err, want)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
		if i%50 == 0 {
			l := filepath.Join(dst, fmt.Sprintf("rootfs/l%d", i))
			if got, err := os.ReadFile(l); err != nil || string(got) != strings.Repeat(fmt.Sprint(i), i) {
				t.Errorf("hardlink %s: %q, %v", l, got, err)
			}
		}
	}
}

// TestDefaultACLModes: below a directory with a default ACL the kernel
// ignores the umask and masks new files' modes with the ACL, so files
// keep their modes only by an explicit chmod.
func TestDefaultACLModes(t *testing.T) {
	dst := t.TempDir()
	// version 2; user::rwx, group::r-x, other::---
	acl := []byte{2, 0, 0, 0,
		0x01, 0, 7, 0, 0xff, 0xff, 0xff, 0xff,
		0x04, 0, 5, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if err := unix.Setxattr(dst, "system.posix_acl_default", acl, 0); err != nil {
		t.Skipf("no default ACL here: %v", err)
	}
	x, err := NewExtractor(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Entry(&Entry{Name: "f", Header: &tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}, Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "f")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode below a default ACL: %v, %v; want 0644", fi.Mode().Perm(), err)
	}
}
