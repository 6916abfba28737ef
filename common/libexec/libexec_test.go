package libexec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindNextToExecutable(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip("no executable path:", err)
	}
	got, err := Find(filepath.Base(exe))
	if err != nil || got != exe {
		t.Errorf("Find(%s) = %q, %v; want the test binary %s", filepath.Base(exe), got, err, exe)
	}
}

func TestFindMissing(t *testing.T) {
	_, err := Find("rkt-no-such-helper")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(Dir, "rkt-no-such-helper")) {
		t.Errorf("err = %v, want ErrNotExist naming %s", err, Dir)
	}
}
