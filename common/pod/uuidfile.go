package pod

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema/types"
)

// ReadUUIDFile reads a pod UUID saved by --uuid-file-save (surrounding
// white space is ignored) and returns it in canonical form.
func ReadUUIDFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading UUID file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	u, err := types.NewUUID(s)
	if err != nil {
		return "", fmt.Errorf("UUID file %s: %q is not a UUID: %w", path, s, err)
	}
	return u.String(), nil
}

// WriteUUIDFile writes uuid to path without a trailing newline (rktlet reads
// it verbatim), atomically: readers see the old content or the new, never a
// partial one.
func WriteUUIDFile(path, uuid string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving pod UUID: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(uuid)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("saving pod UUID to %s: %w", path, err)
	}
	return nil
}
