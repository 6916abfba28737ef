package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// sourceID identifies the sources a build of the tree at src is made from:
// a hash of its Go sources (no tests), go.mod, go.sum and the Go version.
// It is the build annotation of the stage1 images (stage1.AnnBuild), and
// build.sh and the tests link the same value into rkt (stage1.BuildID):
// stage0 runs the fly run entrypoint in its own process only for a fly
// image whose ID equals its own, i.e. whose binary is the code stage0
// carries. Any change to a source file gives another ID, so a rkt and a
// stage1 built from different trees never match.
func sourceID(src string) (string, error) {
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			// VCS data and build.sh's output are not sources.
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || rel == "build") {
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if (strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) || name == "go.mod" || name == "go.sum" {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	io.WriteString(h, runtime.Version()+"\x00")
	for _, rel := range files {
		b, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			return "", err
		}
		io.WriteString(h, filepath.ToSlash(rel)+"\x00")
		h.Write(b)
		h.Write([]byte{0})
	}
	return "src-" + hex.EncodeToString(h.Sum(nil))[:32], nil
}
