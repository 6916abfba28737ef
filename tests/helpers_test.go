package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rktng/rkt/tests/testutil"
)

func writeFileAll(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

// imageID is the appc image ID of an uncompressed ACI.
func imageID(tarBytes []byte) string {
	sum := sha512.Sum512(tarBytes)
	return "sha512-" + hex.EncodeToString(sum[:])
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tarFiles returns the regular files and symlinks of a tar, by name.
func tarFiles(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[strings.TrimPrefix(h.Name, "./")] = string(data)
		case tar.TypeSymlink:
			out[strings.TrimPrefix(h.Name, "./")] = "-> " + h.Linkname
		case tar.TypeDir:
			out[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")+"/"] = ""
		}
	}
}

// between returns the text of s between the first start and the next end.
func between(s, start, end string) (string, bool) {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return "", false
	}
	in, _, ok := strings.Cut(rest, end)
	return in, ok
}

// expectLine fails t unless one line of out is exactly line.
func expectLine(t *testing.T, r testutil.Result, line string) {
	t.Helper()
	for _, l := range strings.Split(r.Stdout, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("no line %q in the output of %v", line, r)
}

// value returns the value of the first "key=value" line of out.
func value(out, key string) (string, bool) {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// dirEntries lists a directory's names, none when it does not exist.
func dirEntries(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// expectAppStartFailure checks what the stage1 under test documents for an
// app that cannot start. fly fails before exec'ing the app: rkt's one-line
// error and 254. The host stage1 starts the app's unit, whose helper fails
// with systemd's status for the step (hostCode: 203 exec, 200 working
// directory) after printing why: the app failed, not rkt. Either way the
// message names want.
func expectAppStartFailure(c *testutil.Ctx, r testutil.Result, hostCode int, want string) {
	c.T.Helper()
	if c.Stage1().Flavor == "fly" {
		c.ExpectFailure(r, want)
		return
	}
	c.Expect(r, hostCode)
	if !strings.Contains(r.Output(), want) {
		c.T.Errorf("the app's start failure does not name %q: %v", want, r)
	}
}
