package fetch

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/rktng/rkt/aci/fetch/fetchtest"
)

// FuzzParseRef: any image argument either fails with ErrBadReference-style
// error or gives a reference whose fields fit its kind.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"example.com/app:1.0,os=linux", "/a/b.aci", "file:///x.aci", "https://e.com/a.aci",
		"docker://busybox", "docker:busybox:1", "oci-archive:/tmp/a.tar:app:1.0", "oci:dir", "oci:", "sha512-abc", "a:b:c", "x://y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			return
		}
		switch r.Kind {
		case KindFile, KindOCIArchive, KindOCIDir:
			if !filepath.IsAbs(r.Path) {
				t.Fatalf("%q: path %q is not absolute", s, r.Path)
			}
		case KindURL:
			if r.URL == nil {
				t.Fatalf("%q: no URL", s)
			}
		case KindName:
			if r.App == nil {
				t.Fatalf("%q: no app", s)
			}
		case KindDocker:
			if r.Docker == "" {
				t.Fatalf("%q: empty docker reference", s)
			}
		case KindID:
		default:
			t.Fatalf("%q: kind %v", s, r.Kind)
		}
	})
}

// FuzzOCIArchive feeds tarballs (what anyone can hand to oci-archive:) to
// the layout reader: the tar index, oci-layout, index.json, nested
// indexes, the manifest and config, and the digest checks of every blob.
func FuzzOCIArchive(f *testing.F) {
	img := fetchtest.Image(f, v1.Config{Cmd: []string{"/x"}}, amd64, fetchtest.Layer(f, fetchtest.TarEntry{Name: "x", Body: "x"}))
	dir := ociLayoutDir(f, img, "app:1.0")
	archive := filepath.Join(f.TempDir(), "a.tar")
	tarDir(f, dir, archive)
	seed, err := os.ReadFile(archive)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, "")
	f.Add(seed, "app:1.0")
	f.Add(seed[:len(seed)/2], "")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, data []byte, ref string) {
		files, err := indexOCITar(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))))
		if err != nil {
			return
		}
		img, name, err := readOCILayout(files, ref, &amd64, "localhost/a")
		if err != nil {
			return
		}
		if name == "" || strings.ContainsAny(name, "\n") {
			t.Fatalf("name %q", name)
		}
		layers, err := img.Layers()
		if err != nil {
			return
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				continue
			}
			io.Copy(io.Discard, rc)
			rc.Close()
		}
	})
}
