package acibuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rktng/rkt/aci/archive"
)

type entry struct {
	hdr  tar.Header
	data string
}

func readAll(t *testing.T, data []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, entry{*hdr, string(body)})
	}
}

func names(entries []entry) string {
	var n []string
	for _, e := range entries {
		n = append(n, e.hdr.Name)
	}
	return strings.Join(n, " ")
}

func TestBuild(t *testing.T) {
	m, err := Manifest("example.com/test", map[string]string{"version": "1.2", "os": "linux"})
	if err != nil {
		t.Fatal(err)
	}
	files := []File{
		{Path: "/usr/bin/app", Mode: 0o755 | os.ModeSetuid, Data: []byte("binary"), Uid: 10, Gid: 20},
		{Path: "usr/", Type: tar.TypeDir, Mode: 0o700},
		{Path: "usr/bin/link", Type: tar.TypeLink, Linkname: "/usr/bin/app"},
		{Path: "etc/sh", Type: tar.TypeSymlink, Linkname: "/bin/busybox"},
	}
	var a, b bytes.Buffer
	if err := Build(&a, m, files); err != nil {
		t.Fatal(err)
	}
	if err := Build(&b, m, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("two builds of the same input differ")
	}
	entries := readAll(t, a.Bytes())
	want := "manifest rootfs/ rootfs/usr/ rootfs/usr/bin/ rootfs/usr/bin/app rootfs/usr/bin/link rootfs/etc/ rootfs/etc/sh"
	if got := names(entries); got != want {
		t.Fatalf("entries:\n%s\nwant\n%s", got, want)
	}
	if e := entries[2]; e.hdr.Mode != 0o700 {
		t.Errorf("listed directory usr written with mode %o, want its own 700", e.hdr.Mode)
	}
	if e := entries[4]; e.hdr.Mode != 0o4755 || e.hdr.Uid != 10 || e.hdr.Gid != 20 || e.data != "binary" || !e.hdr.ModTime.Equal(DefaultModTime) {
		t.Errorf("app: %+v %q", e.hdr, e.data)
	}
	if e := entries[5]; e.hdr.Typeflag != tar.TypeLink || e.hdr.Linkname != "rootfs/usr/bin/app" {
		t.Errorf("link: %+v", e.hdr)
	}
	img, err := archive.Validate(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatalf("built image does not validate: %v", err)
	}
	if v, _ := img.Manifest.Labels.Get("version"); v != "1.2" || img.Manifest.Name != "example.com/test" {
		t.Errorf("manifest %+v", img.Manifest)
	}

	var z bytes.Buffer
	if err := Build(&z, m, files, WithGzip()); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&z)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Equal(plain, a.Bytes()) {
		t.Errorf("gzip image does not hold the plain one")
	}
}

func TestManifestRefusesBadNames(t *testing.T) {
	if _, err := Manifest("Not A Name", nil); err == nil {
		t.Error("invalid name accepted")
	}
	if _, err := Manifest("example.com/x", map[string]string{"bad label": "v"}); err == nil {
		t.Error("invalid label name accepted")
	}
}

func TestBuildFromDir(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin", "busybox"), []byte("bb"), 0o755))
	must(os.Chmod(filepath.Join(root, "bin", "busybox"), 0o755|os.ModeSetuid))
	must(os.Link(filepath.Join(root, "bin", "busybox"), filepath.Join(root, "bin", "sh")))
	must(os.Symlink("busybox", filepath.Join(root, "bin", "ls")))
	must(os.WriteFile(filepath.Join(root, "owned"), []byte("o"), 0o644))
	if os.Geteuid() == 0 {
		must(os.Chown(filepath.Join(root, "owned"), 1234, 5678))
	}
	l, err := net.Listen("unix", filepath.Join(root, "socket"))
	must(err)
	defer l.Close()

	m, _ := Manifest("example.com/dir", nil)
	var buf bytes.Buffer
	must(BuildFromDir(&buf, m, root))
	entries := readAll(t, buf.Bytes())
	want := "manifest rootfs/ rootfs/bin/ rootfs/bin/busybox rootfs/bin/ls rootfs/bin/sh rootfs/owned"
	if got := names(entries); got != want {
		t.Fatalf("entries:\n%s\nwant\n%s", got, want)
	}
	byName := map[string]entry{}
	for _, e := range entries {
		byName[e.hdr.Name] = e
	}
	if e := byName["rootfs/bin/busybox"]; e.hdr.Mode != 0o4755 || e.data != "bb" {
		t.Errorf("busybox: mode %o data %q", e.hdr.Mode, e.data)
	}
	if e := byName["rootfs/bin/sh"]; e.hdr.Typeflag != tar.TypeLink || e.hdr.Linkname != "rootfs/bin/busybox" {
		t.Errorf("sh: %+v", e.hdr)
	}
	if e := byName["rootfs/bin/ls"]; e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != "busybox" {
		t.Errorf("ls: %+v", e.hdr)
	}
	if e := byName["rootfs/owned"]; e.hdr.Uid != 0 || e.hdr.Gid != 0 {
		t.Errorf("owner %d:%d, want 0:0 by default", e.hdr.Uid, e.hdr.Gid)
	}
	if _, err := archive.Validate(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("image from a directory does not validate: %v", err)
	}
	if os.Geteuid() == 0 {
		buf.Reset()
		must(BuildFromDir(&buf, m, root, PreserveOwner()))
		for _, e := range readAll(t, buf.Bytes()) {
			if e.hdr.Name == "rootfs/owned" && (e.hdr.Uid != 1234 || e.hdr.Gid != 5678) {
				t.Errorf("PreserveOwner: %d:%d", e.hdr.Uid, e.hdr.Gid)
			}
		}
	}
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	if err := BuildFromDir(io.Discard, m, root); err == nil || !strings.Contains(err.Error(), "fifo") {
		t.Errorf("a fifo in the rootfs: %v", err)
	}
}

func TestRawEntriesWritesAnything(t *testing.T) {
	var buf bytes.Buffer
	err := RawEntries(&buf, []RawEntry{
		{Header: tar.Header{Name: "../../etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, Data: []byte("evil")},
		{Header: tar.Header{Name: "rootfs/dev/mem", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	entries := readAll(t, buf.Bytes())
	if names(entries) != "../../etc/passwd rootfs/dev/mem" || entries[0].data != "evil" {
		t.Fatalf("entries %v", names(entries))
	}
}
