// Package libexec finds rkt's helper binaries (rkt-fetch, rkt-ql-dump):
// next to the running rkt first (a build tree, or a package that installs
// them beside it), then in Dir, where rkt's packages install them.
package libexec

import (
	"fmt"
	"os"
	"path/filepath"
)

// Dir is where rkt's packages install its helpers and stage1 images.
const Dir = "/usr/lib/rkt"

// Find returns the path of the helper name, or an error that wraps
// os.ErrNotExist and names the places looked in.
func Find(name string) (string, error) {
	var tried []string
	for _, dir := range dirs() {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("%s is in none of %v: %w", name, tried, os.ErrNotExist)
}

func dirs() []string {
	var d []string
	if exe, err := os.Executable(); err == nil {
		d = append(d, filepath.Dir(exe))
	}
	return append(d, Dir)
}
