package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/tests/testutil/asroot"
)

var mtime = time.Date(2019, 5, 6, 7, 8, 9, 0, time.UTC)

func goodImage(t *testing.T, opts ...acibuild.Option) []byte {
	t.Helper()
	m, err := acibuild.Manifest("example.com/good", map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	files := []acibuild.File{
		{Path: "bin/", Type: tar.TypeDir, Mode: 0o755},
		{Path: "bin/sh", Mode: 0o755, Data: []byte("#!shell")},
		{Path: "bin/su", Mode: 0o755 | os.ModeSetuid, Data: []byte("su"), Uid: 0, Gid: 0},
		{Path: "bin/sh-link", Type: tar.TypeLink, Linkname: "bin/sh"},
		{Path: "tmp", Type: tar.TypeDir, Mode: 0o777 | os.ModeSticky},
		{Path: "home/user/file", Mode: 0o600, Data: []byte("private"), Uid: 1000, Gid: 1001},
		{Path: "etc/alternatives/editor", Type: tar.TypeSymlink, Linkname: "/usr/bin/vi"},
		{Path: "lib", Type: tar.TypeSymlink, Linkname: "usr/lib"},
		{Path: "empty", Mode: 0o644},
	}
	var buf bytes.Buffer
	if err := acibuild.Build(&buf, m, files, append(opts, acibuild.WithModTime(mtime))...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t *testing.T, kind Compression, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case Plain:
		return data
	case Gzip:
		return gzipped(t, data)
	case Xz:
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case Bzip2:
		// The standard library only decodes bzip2.
		bz, err := exec.LookPath("bzip2")
		if err != nil {
			t.Skip("bzip2 program not installed: cannot make a bzip2 image")
		}
		cmd := exec.Command(bz, "-c")
		cmd.Stdin, cmd.Stdout = bytes.NewReader(data), &buf
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestGoodArchivesAllCompressions(t *testing.T) {
	plain := goodImage(t)
	for _, kind := range []Compression{Plain, Gzip, Bzip2, Xz} {
		t.Run(string(kind), func(t *testing.T) {
			rc, got, err := NewReaderKind(bytes.NewReader(compress(t, kind, plain)))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if got != kind {
				t.Errorf("detected %s, want %s", got, kind)
			}
			dst := t.TempDir()
			img, err := Extract(rc, dst, nil)
			if err != nil {
				t.Fatal(err)
			}
			if img.Manifest.Name != "example.com/good" {
				t.Errorf("manifest name %q", img.Manifest.Name)
			}
			// What follows the end-of-archive marker must decompress cleanly.
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatal(err)
			}
			checkGoodTree(t, dst)
		})
	}
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func checkGoodTree(t *testing.T, dst string) {
	t.Helper()
	root := filepath.Join(dst, "rootfs")
	if data, err := os.ReadFile(filepath.Join(dst, "manifest")); err != nil || !strings.Contains(string(data), "example.com/good") {
		t.Errorf("manifest: %q %v", data, err)
	}
	if data, err := os.ReadFile(filepath.Join(root, "bin/sh")); err != nil || string(data) != "#!shell" {
		t.Errorf("bin/sh: %q %v", data, err)
	}
	sh, link := lstat(t, filepath.Join(root, "bin/sh")), lstat(t, filepath.Join(root, "bin/sh-link"))
	if sh.Ino != link.Ino {
		t.Errorf("bin/sh-link is not a hardlink of bin/sh")
	}
	if st := lstat(t, filepath.Join(root, "bin/su")); st.Mode&0o7777 != 0o4755 {
		t.Errorf("bin/su mode %o, want 4755", st.Mode&0o7777)
	}
	if st := lstat(t, filepath.Join(root, "tmp")); st.Mode&0o7777 != 0o1777 || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("tmp mode %o, want dir 1777", st.Mode)
	}
	st := lstat(t, filepath.Join(root, "home/user/file"))
	if os.Geteuid() == 0 && (st.Uid != 1000 || st.Gid != 1001) {
		t.Errorf("home/user/file owner %d:%d, want 1000:1001", st.Uid, st.Gid)
	}
	if st.Mode&0o777 != 0o600 {
		t.Errorf("home/user/file mode %o", st.Mode&0o777)
	}
	if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
		t.Errorf("home/user/file mtime %v, want %v", got, mtime)
	}
	if got := time.Unix(lstat(t, filepath.Join(root, "bin")).Mtim.Unix()); !got.Equal(mtime) {
		t.Errorf("bin mtime %v, want %v (directory times are set last)", got, mtime)
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/alternatives/editor")); err != nil || target != "/usr/bin/vi" {
		t.Errorf("symlink: %q %v", target, err)
	}
	if target, err := os.Readlink(filepath.Join(root, "lib")); err != nil || target != "usr/lib" {
		t.Errorf("symlink: %q %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "empty")); err != nil || fi.Size() != 0 {
		t.Errorf("empty: %v %v", fi, err)
	}
}

func buildImage(t *testing.T, name string, files ...acibuild.File) []byte {
	t.Helper()
	m, err := acibuild.Manifest(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := acibuild.Build(&buf, m, files); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLayeringLaterWins(t *testing.T) {
	lower := buildImage(t, "example.com/lower",
		acibuild.File{Path: "etc/conf", Mode: 0o644, Data: []byte("lower")},
		acibuild.File{Path: "etc/", Type: tar.TypeDir, Mode: 0o700},
		acibuild.File{Path: "lib", Type: tar.TypeSymlink, Linkname: "usr/lib"},
		acibuild.File{Path: "usr/lib/liba", Mode: 0o644, Data: []byte("a")},
		acibuild.File{Path: "var/x", Mode: 0o644, Data: []byte("file")},
		acibuild.File{Path: "opt/dir/f", Mode: 0o644, Data: []byte("f")},
		acibuild.File{Path: "shared", Mode: 0o644, Data: []byte("shared")},
		acibuild.File{Path: "shared-link", Type: tar.TypeLink, Linkname: "shared"},
	)
	upper := buildImage(t, "example.com/upper",
		acibuild.File{Path: "etc/", Type: tar.TypeDir, Mode: 0o755},
		acibuild.File{Path: "etc/conf", Mode: 0o600, Data: []byte("upper")},
		acibuild.File{Path: "lib/libb", Mode: 0o644, Data: []byte("b")},
		acibuild.File{Path: "var/x/", Type: tar.TypeDir, Mode: 0o755},
		acibuild.File{Path: "opt/dir", Mode: 0o644, Data: []byte("now a file")},
		acibuild.File{Path: "shared", Mode: 0o644, Data: []byte("replaced")},
	)
	dst := t.TempDir()
	x, err := NewExtractor(dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range [][]byte{lower, upper} {
		if _, err := x.Add(bytes.NewReader(img), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dst, "rootfs")
	read := func(p string) string {
		data, _ := os.ReadFile(filepath.Join(root, p))
		return string(data)
	}
	if got := read("etc/conf"); got != "upper" {
		t.Errorf("etc/conf = %q", got)
	}
	if st := lstat(t, filepath.Join(root, "etc")); st.Mode&0o777 != 0o755 {
		t.Errorf("etc mode %o: the later directory entry's metadata must win", st.Mode&0o777)
	}
	if fi, err := os.Lstat(filepath.Join(root, "lib")); err != nil || !fi.IsDir() {
		t.Errorf("lib must have become a directory, not followed: %v %v", fi, err)
	}
	if read("lib/libb") != "b" || read("usr/lib/liba") != "a" {
		t.Errorf("lib/libb or usr/lib/liba missing")
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/lib/libb")); err == nil {
		t.Errorf("libb was written through the lower image's symlink")
	}
	if fi, err := os.Lstat(filepath.Join(root, "var/x")); err != nil || !fi.IsDir() {
		t.Errorf("var/x must be a directory: %v %v", fi, err)
	}
	if read("opt/dir") != "now a file" {
		t.Errorf("opt/dir not replaced by a file")
	}
	// Replacing a file must not write through its other links.
	if read("shared") != "replaced" || read("shared-link") != "shared" {
		t.Errorf("shared=%q shared-link=%q", read("shared"), read("shared-link"))
	}
}

func TestFilter(t *testing.T) {
	img := buildImage(t, "example.com/f",
		acibuild.File{Path: "keep/a", Mode: 0o644, Data: []byte("a")},
		acibuild.File{Path: "drop/b", Mode: 0o644, Data: []byte("b")},
		acibuild.File{Path: "keep/link", Type: tar.TypeLink, Linkname: "drop/b"},
	)
	dst := t.TempDir()
	filter := map[string]struct{}{"rootfs": {}, "rootfs/keep/a": {}, "rootfs/keep/link": {}}
	if _, err := Extract(bytes.NewReader(img), dst, filter); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(dst, p)
		got = append(got, rel)
		return nil
	})
	want := ". rootfs rootfs/keep rootfs/keep/a"
	if strings.Join(got, " ") != want {
		t.Errorf("extracted %v, want %s (a hardlink to a filtered-out file is left out)", got, want)
	}
}

func TestXattrs(t *testing.T) {
	dst := t.TempDir()
	if err := unix.Setxattr(dst, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("filesystem of %s has no user xattrs: %v", dst, err)
	}
	img := rawTar(t, acibuild.RawManifest(goodManifest), acibuild.RawDir("rootfs/"), acibuild.RawEntry{
		Header: tar.Header{Name: "rootfs/f", Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.user.color": "blue"}},
		Data: []byte("x"),
	})
	if _, err := Extract(bytes.NewReader(img), dst, nil); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := unix.Getxattr(filepath.Join(dst, "rootfs/f"), "user.color", buf)
	if err != nil || string(buf[:n]) != "blue" {
		t.Fatalf("xattr: %q %v", buf[:n], err)
	}
}

// The extractor must hold on its own, without the validator in front.
func TestExtractorConfinedWithoutValidation(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	dst := filepath.Join(base, "dst")
	os.Mkdir(dst, 0o755)
	x, err := NewExtractor(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	entry := func(name string, typ byte, link, data string) error {
		return x.Entry(&Entry{Name: name, Header: &tar.Header{Name: name, Typeflag: typ, Linkname: link, Mode: 0o644, Size: int64(len(data))}, Body: strings.NewReader(data)})
	}
	if err := entry("rootfs", tar.TypeDir, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := entry("rootfs/x", tar.TypeSymlink, outside, ""); err != nil {
		t.Fatal(err)
	}
	// A later entry below the symlink replaces it by a directory.
	if err := entry("rootfs/x/passwd", tar.TypeReg, "", "pwned"); err != nil {
		t.Fatal(err)
	}
	if err := entry("rootfs/../../outside/f", tar.TypeReg, "", "pwned"); err == nil {
		t.Errorf("a name with .. was extracted")
	}
	if err := entry("rootfs/up", tar.TypeSymlink, "../..", ""); err != nil {
		t.Fatal(err)
	}
	if err := entry("rootfs/h", tar.TypeLink, "rootfs/up/outside/f", ""); err != nil {
		t.Fatal(err) // skipped: not a file of this image
	}
	// Files are complete once Close returns (small ones are written by
	// workers).
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Fatalf("written outside the destination: %v", entries)
	}
	if data, err := os.ReadFile(filepath.Join(dst, "rootfs/x/passwd")); err != nil || string(data) != "pwned" {
		t.Fatalf("rootfs/x/passwd: %q %v", data, err)
	}
}

// Files of owner 0:0 skip chown when created by root, unless a setgid
// destination would give them its group.
func TestSetgidDestinationGroup(t *testing.T) {
	asroot.Require(t, "chowns the destination")
	dst := t.TempDir()
	if err := os.Chown(dst, 0, 4321); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, 0o755|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	img := buildImage(t, "example.com/g", acibuild.File{Path: "f", Mode: 0o644, Data: []byte("f")})
	if _, err := Extract(bytes.NewReader(img), dst, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"manifest", "rootfs", "rootfs/f"} {
		if st := lstat(t, filepath.Join(dst, p)); st.Gid != 0 {
			t.Errorf("%s has group %d, want 0 from the image", p, st.Gid)
		}
	}
}

func TestTruncatedCompressedStreams(t *testing.T) {
	plain := goodImage(t)
	for _, kind := range []Compression{Plain, Gzip, Bzip2, Xz} {
		t.Run(string(kind), func(t *testing.T) {
			data := compress(t, kind, plain)
			for _, cut := range []int{len(data) / 3, len(data) - 1} {
				rc, err := NewReader(bytes.NewReader(data[:cut]))
				if err == nil {
					_, err = Extract(rc, t.TempDir(), nil)
					if err == nil {
						_, err = io.Copy(io.Discard, rc)
					}
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("cut at %d of %d: %v, want ErrCorrupt", cut, len(data), err)
				}
			}
		})
	}
}

// The caller's reader is read to its end (a signature may be checked
// there); zero padding after the compressed stream is fine, data is not.
func TestReaderConsumesWholeInput(t *testing.T) {
	plain := goodImage(t)
	for _, kind := range []Compression{Plain, Gzip, Bzip2, Xz} {
		t.Run(string(kind), func(t *testing.T) {
			data := compress(t, kind, plain)
			tails := map[string][]byte{"none": nil, "zeros": make([]byte, 4096), "garbage": []byte("trailing garbage")}
			for name, tail := range tails {
				if (kind == Gzip || kind == Bzip2) && name == "zeros" {
					continue // both read on for another member: zeros are a bad header
				}
				src := bytes.NewReader(append(append([]byte(nil), data...), tail...))
				rc, err := NewReader(src)
				if err != nil {
					t.Fatal(err)
				}
				if _, err = Validate(rc); err == nil {
					_, err = io.Copy(io.Discard, rc)
				}
				wantErr := name == "garbage" && kind != Plain
				if wantErr != errors.Is(err, ErrCorrupt) || (!wantErr && err != nil) {
					t.Errorf("tail %s: %v", name, err)
				}
				if !wantErr && src.Len() != 0 {
					t.Errorf("tail %s: %d bytes of input left unread", name, src.Len())
				}
			}
		})
	}
}
