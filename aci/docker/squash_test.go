package docker

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/rktng/rkt/aci/archive"
)

type entry struct {
	name     string
	typ      byte
	body     string
	linkname string
}

func layerFile(t *testing.T, dir, name string, entries []entry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Linkname: e.linkname}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeChar {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func reg(name, body string) entry { return entry{name: name, typ: tar.TypeReg, body: body} }
func dir(name string) entry       { return entry{name: name, typ: tar.TypeDir} }

func TestSquash(t *testing.T) {
	d := t.TempDir()
	l0 := layerFile(t, d, "0", []entry{
		dir("./"), dir("etc/"), reg("etc/passwd", "root"), reg("etc/hosts", "old hosts"),
		dir("usr/"), dir("usr/bin/"), reg("usr/bin/a", "a v0"),
		dir("opt/"), dir("opt/x/"), reg("opt/x/y", "y"), reg("opt/keep-not", "k"),
		dir("d/"), reg("d/child", "c"),
		dir("lib/"), {name: "lib/link", typ: tar.TypeLink, linkname: "usr/bin/a"},
		reg("gone/file", "g"),
	})
	l1 := layerFile(t, d, "1", []entry{
		reg("etc/.wh.hosts", ""),
		reg("opt/.wh..wh..opq", ""), reg("opt/new", "n"),
		reg("usr/bin/a", "a v1"),
		reg("d", "now a file"),
		{name: "dev/null", typ: tar.TypeChar},
		reg(".wh.gone", ""),
	})
	l2 := layerFile(t, d, "2", []entry{
		reg("etc/hosts", "new hosts"),
		reg("etc/passwd", "first"), reg("etc/passwd", "second"), // the later entry wins
	})
	m := schema.BlankImageManifest()
	m.Name = "example.com/squashed"
	var out bytes.Buffer
	if err := Squash(&out, m, []string{l0, l1, l2}); err != nil {
		t.Fatal(err)
	}
	if _, err := archive.Validate(bytes.NewReader(out.Bytes())); err != nil {
		t.Fatalf("squashed ACI invalid: %v", err)
	}
	got := map[string]string{}
	var order []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		v := string(b)
		if h.Typeflag == tar.TypeLink {
			v = "-> " + h.Linkname
		}
		name := strings.TrimSuffix(h.Name, "/")
		if _, dup := got[name]; dup {
			t.Errorf("duplicate entry %s", name)
		}
		got[name] = v
		order = append(order, name)
	}
	want := map[string]string{
		"rootfs/etc/passwd": "second",
		"rootfs/etc/hosts":  "new hosts",
		"rootfs/usr/bin/a":  "a v1",
		"rootfs/opt/new":    "n",
		"rootfs/d":          "now a file",
		"rootfs/lib/link":   "-> rootfs/usr/bin/a",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, absent := range []string{"rootfs/opt/x/y", "rootfs/opt/x", "rootfs/opt/keep-not", "rootfs/d/child", "rootfs/dev/null", "rootfs/gone/file", "rootfs/gone"} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s survived", absent)
		}
	}
	if order[0] != "manifest" || order[1] != "rootfs" {
		t.Errorf("order starts %v", order[:2])
	}
	if indexOf(order, "rootfs/lib/link") < indexOf(order, "rootfs/usr/bin/a") {
		t.Error("hard link before its target")
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
