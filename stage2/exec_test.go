package stage2

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookPathNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "prog")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a := &App{Name: "a", Environment: []string{"PATH=/nonexistent:" + dir}}
	if p, err := a.LookPath("prog"); err != nil || p != exe {
		t.Errorf("LookPath(prog) = %q, %v", p, err)
	}
	_, err := a.LookPath("missing")
	var se *StartError
	if !errors.As(err, &se) || se.Code != ExitExec || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"missing" not found in PATH`) {
		t.Errorf("LookPath(missing) = %v", err)
	}
	if _, err := a.LookPath(filepath.Join(dir, "data")); err == nil || !strings.Contains(err.Error(), "not executable") {
		t.Errorf("LookPath(non-executable) = %v", err)
	}
	if _, err := (&App{Name: "a"}).LookPath("sh"); err != nil {
		t.Errorf("default PATH does not find sh: %v", err)
	}
}

func TestConfigRoundTrip(t *testing.T) {
	a := &App{Name: "x", Root: "/opt/stage2/x/rootfs", Exec: []string{"/bin/x", "arg"}, UID: 1, GID: 2,
		SupplementaryGIDs: []int{3}, Environment: []string{"A=b=c"}, PreStart: [][]string{{"/pre"}}}
	p := filepath.Join(t.TempDir(), "d", "x.json")
	if err := a.Save(p); err != nil {
		t.Fatal(err)
	}
	b, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := b.Getenv("A"); !ok || v != "b=c" || b.UID != 1 || b.PreStart[0][0] != "/pre" {
		t.Errorf("round trip lost data: %+v", b)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}
