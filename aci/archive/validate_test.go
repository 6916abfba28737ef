package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rktng/rkt/aci/acibuild"
)

const goodManifest = `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/test"}`

func rawTar(t *testing.T, entries ...acibuild.RawEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := acibuild.RawEntries(&buf, entries); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// image prefixes entries with a valid manifest and the rootfs directory.
func image(t *testing.T, entries ...acibuild.RawEntry) []byte {
	return rawTar(t, append([]acibuild.RawEntry{acibuild.RawManifest(goodManifest), acibuild.RawDir("rootfs/")}, entries...)...)
}

// extractFrom decompresses and extracts an ACI into a fresh destination
// and returns the error, the destination, and its parent for inspection.
func extractFrom(t *testing.T, aci []byte) (string, string, error) {
	t.Helper()
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "etc", "passwd"), []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(base, "dst")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	rc, err := NewReader(bytes.NewReader(aci))
	if err != nil {
		return dst, base, err
	}
	defer rc.Close()
	_, err = Extract(rc, dst, nil)
	return dst, base, err
}

// assertNothingOutside checks that base holds only dst and the untouched
// outside tree.
func assertNothingOutside(t *testing.T, base string) {
	t.Helper()
	err := filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		switch {
		case rel == ".", rel == "dst", strings.HasPrefix(rel, "dst/"),
			rel == "outside", rel == "outside/etc", rel == "outside/etc/passwd":
			return nil
		}
		t.Errorf("unexpected path outside the destination: %s", rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(base, "outside", "etc", "passwd"))
	if err != nil || string(data) != "original" {
		t.Errorf("outside/etc/passwd changed: %q %v", data, err)
	}
}

func TestMaliciousArchives(t *testing.T) {
	good := image(t, acibuild.RawFile("rootfs/a", "a"))
	cases := []struct {
		name string
		aci  func(t *testing.T, outside string) []byte
		want error
		// in the error message, besides the sentinel's text
		mention string
	}{
		{"dotdot", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawFile("rootfs/../etc/passwd", "x"))
		}, ErrUnsafeEntry, `entry "rootfs/../etc/passwd": path escapes the rootfs`},
		{"dotdot at top", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawFile("../outside/etc/passwd", "x"))
		}, ErrUnsafeEntry, "path escapes"},
		{"absolute path", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawFile("/etc/passwd", "x"))
		}, ErrUnsafeEntry, "absolute path"},
		{"outside rootfs", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawFile("etc/passwd", "x"))
		}, ErrUnsafeEntry, "outside manifest and rootfs"},
		{"symlink absolute then through it", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawLink(tar.TypeSymlink, "rootfs/x", "/etc"), acibuild.RawFile("rootfs/x/passwd", "x"))
		}, ErrUnsafeEntry, `parent "rootfs/x" is a symlink`},
		{"symlink to outside dir then through it", func(t *testing.T, outside string) []byte {
			return image(t, acibuild.RawLink(tar.TypeSymlink, "rootfs/x", outside+"/etc"), acibuild.RawFile("rootfs/x/passwd", "x"))
		}, ErrUnsafeEntry, "is a symlink"},
		{"symlink relative escape", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawLink(tar.TypeSymlink, "rootfs/x", "../../.."))
		}, ErrUnsafeEntry, "escapes the rootfs"},
		{"symlink deep relative escape then through", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawDir("rootfs/a/"), acibuild.RawLink(tar.TypeSymlink, "rootfs/a/x", "../../outside/etc"), acibuild.RawFile("rootfs/a/x/passwd", "x"))
		}, ErrUnsafeEntry, "escapes the rootfs"},
		{"rootfs is a symlink", func(t *testing.T, outside string) []byte {
			return rawTar(t, acibuild.RawManifest(goodManifest), acibuild.RawLink(tar.TypeSymlink, "rootfs", outside))
		}, ErrUnsafeEntry, "rootfs is not a directory"},
		{"hardlink to /etc/shadow", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawLink(tar.TypeLink, "rootfs/shadow", "/etc/shadow"))
		}, ErrUnsafeEntry, "outside the rootfs"},
		{"hardlink outside rootfs", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawLink(tar.TypeLink, "rootfs/p", "rootfs/../../outside/etc/passwd"))
		}, ErrUnsafeEntry, "outside the rootfs"},
		{"hardlink to manifest", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawLink(tar.TypeLink, "rootfs/m", "manifest"))
		}, ErrUnsafeEntry, "outside the rootfs"},
		{"hardlink to a later entry", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawLink(tar.TypeLink, "rootfs/l", "rootfs/f"), acibuild.RawFile("rootfs/f", "f"))
		}, ErrUnsafeEntry, "not an earlier regular file"},
		{"hardlink to a symlink", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawLink(tar.TypeSymlink, "rootfs/s", "/etc/passwd"), acibuild.RawLink(tar.TypeLink, "rootfs/l", "rootfs/s"))
		}, ErrUnsafeEntry, "not an earlier regular file"},
		{"char device", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawEntry{Header: tar.Header{Name: "rootfs/mem", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1, Mode: 0o666}})
		}, ErrUnsafeEntry, "device node"},
		{"block device", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawEntry{Header: tar.Header{Name: "rootfs/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Mode: 0o666}})
		}, ErrUnsafeEntry, "device node"},
		{"fifo", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawEntry{Header: tar.Header{Name: "rootfs/fifo", Typeflag: tar.TypeFifo, Mode: 0o666}})
		}, ErrUnsafeEntry, "fifo"},
		{"file as parent", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawFile("rootfs/f", "f"), acibuild.RawFile("rootfs/f/g", "g"))
		}, ErrUnsafeEntry, "not a directory"},
		{"duplicate entry", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawFile("rootfs/a", "1"), acibuild.RawFile("rootfs/a", "2"))
		}, ErrDuplicateEntry, `entry "rootfs/a": path already in the archive`},
		{"duplicate after cleaning", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawFile("rootfs/a/b", "1"), acibuild.RawFile("./rootfs//a/./b", "2"))
		}, ErrDuplicateEntry, "already in the archive"},
		{"symlink over an implied directory", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawFile("rootfs/x/passwd", "1"), acibuild.RawLink(tar.TypeSymlink, "rootfs/x", "/etc"))
		}, ErrDuplicateEntry, "already in the archive"},
		{"duplicate manifest", func(t *testing.T, _ string) []byte {
			return image(t, acibuild.RawManifest(goodManifest))
		}, ErrDuplicateEntry, "already in the archive"},
		{"truncated gzip", func(t *testing.T, _ string) []byte {
			z := gzipped(t, good)
			return z[:len(z)/2]
		}, ErrCorrupt, "gzip"},
		{"truncated tar", func(t *testing.T, _ string) []byte {
			return good[:700]
		}, ErrCorrupt, ""},
		{"garbage", func(t *testing.T, _ string) []byte {
			return bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x17}, 1000)
		}, ErrCorrupt, "not a tar"},
		{"empty", func(t *testing.T, _ string) []byte { return nil }, ErrCorrupt, ""},
		{"missing manifest", func(t *testing.T, _ string) []byte {
			return rawTar(t, acibuild.RawDir("rootfs/"), acibuild.RawFile("rootfs/a", "a"))
		}, ErrInvalidManifest, "no manifest"},
		{"invalid manifest JSON", func(t *testing.T, _ string) []byte {
			return rawTar(t, acibuild.RawManifest(`{"acKind": "ImageManifest",`), acibuild.RawDir("rootfs/"))
		}, ErrInvalidManifest, `entry "manifest"`},
		{"wrong acKind", func(t *testing.T, _ string) []byte {
			return rawTar(t, acibuild.RawManifest(`{"acKind":"PodManifest","acVersion":"0.8.11","name":"example.com/test"}`), acibuild.RawDir("rootfs/"))
		}, ErrInvalidManifest, "ACKind"},
		{"manifest is a directory", func(t *testing.T, _ string) []byte {
			return rawTar(t, acibuild.RawDir("manifest/"), acibuild.RawDir("rootfs/"))
		}, ErrInvalidManifest, "not a regular file"},
		{"missing rootfs", func(t *testing.T, _ string) []byte {
			return rawTar(t, acibuild.RawManifest(goodManifest))
		}, ErrInvalidLayout, "no rootfs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			data := tc.aci(t, filepath.Join(base, "outside"))
			_, verr := Validate(tarStream(t, data))
			if !errors.Is(verr, tc.want) {
				t.Errorf("Validate: got %v, want %v", verr, tc.want)
			}
			_, extractBase, err := extractFrom(t, data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extract: got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			assertNothingOutside(t, extractBase)
		})
	}
}

// tarStream decompresses data, or returns a reader on a stream that is
// already corrupt so that Validate reports it.
func tarStream(t *testing.T, data []byte) io.Reader {
	rc, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return &errReader{err}
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func TestEntryErrorFormat(t *testing.T) {
	_, err := Validate(bytes.NewReader(image(t, acibuild.RawFile("rootfs/../etc/passwd", "x"))))
	want := `entry "rootfs/../etc/passwd": path escapes the rootfs: unsafe entry`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Entry != "rootfs/../etc/passwd" {
		t.Fatalf("not an *EntryError naming the entry: %#v", err)
	}
}

func TestManifestAfterRootfs(t *testing.T) {
	data := rawTar(t, acibuild.RawDir("rootfs/"), acibuild.RawFile("rootfs/a", "a"), acibuild.RawManifest(goodManifest))
	img, err := Validate(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if img.Manifest.Name.String() != "example.com/test" || string(img.RawManifest) != goodManifest {
		t.Fatalf("manifest: %+v %q", img.Manifest, img.RawManifest)
	}
}

func TestDotEntryAndImplicitRootfs(t *testing.T) {
	// "tar -C dir ." archives start with "./" and may omit directories.
	data := rawTar(t, acibuild.RawDir("./"), acibuild.RawManifest(goodManifest), acibuild.RawFile("./rootfs/bin/sh", "sh"), acibuild.RawDir("./rootfs/bin/"))
	if _, err := Validate(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func TestSourceErrorsAreNotCorruption(t *testing.T) {
	boom := errors.New("connection reset")
	noise := make([]byte, 100000)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	z := gzipped(t, image(t, acibuild.RawFile("rootfs/a", string(noise))))
	r := io.MultiReader(bytes.NewReader(z[:len(z)/2]), &errReader{boom})
	rc, err := NewReader(r)
	if err == nil {
		_, err = Validate(rc)
	}
	if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want the source's error and not ErrCorrupt", err)
	}
}
