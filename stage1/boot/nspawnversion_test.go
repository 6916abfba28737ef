package boot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rktng/rkt/common/pod"
)

func TestParseSystemdVersion(t *testing.T) {
	for in, want := range map[string]int{"252": 252, "252.38-1~deb12u1": 252, "256~rc3 (256~rc3-1)": 256, "239 (239-78.el8)": 239} {
		if got, err := parseSystemdVersion(in); err != nil || got != want {
			t.Errorf("parseSystemdVersion(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "v252", "systemd"} {
		if _, err := parseSystemdVersion(in); err == nil {
			t.Errorf("parseSystemdVersion(%q): no error", in)
		}
	}
}

func TestNspawnRule(t *testing.T) {
	for _, tc := range []struct {
		name         string
		host, image  int
		privateUsers bool
		refused      bool
		warned       bool
	}{
		{"same", 252, 252, false, false, false},
		{"newer host", 257, 252, true, false, false},
		{"no annotation", 252, 0, false, false, false},
		{"older host", 252, 256, false, false, true},
		{"too old for the command line", 241, 0, false, true, false},
		{"too old for private users", 247, 247, true, true, false},
		{"private users", 249, 249, true, false, false},
	} {
		var warn bytes.Buffer
		err := nspawnRule(tc.host, tc.image, tc.privateUsers, &warn)
		if (err != nil) != tc.refused || (err != nil && !errors.Is(err, ErrNspawnTooOld)) {
			t.Errorf("%s: err %v, want refused=%v", tc.name, err, tc.refused)
		}
		if (warn.Len() > 0) != tc.warned {
			t.Errorf("%s: warning %q, want warned=%v", tc.name, warn.String(), tc.warned)
		}
	}
}

func TestCheckNspawnReadsAnnotation(t *testing.T) {
	dir := t.TempDir()
	// A fake nspawn printing what systemd 250 prints.
	fake := filepath.Join(dir, "systemd-nspawn")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'systemd 250 (250.4-1)'\necho '+PAM +AUDIT'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := pod.Stage1ManifestPath(dir)
	if err := os.MkdirAll(filepath.Dir(m), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"coreos.com/rkt/stage1-host",
		"annotations":[{"name":"coreos.com/rkt/stage1/systemd-version","value":"252"}]}`
	if err := os.WriteFile(m, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	if err := checkNspawn(fake, dir, false, &warn); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn.String(), "version 250") || !strings.Contains(warn.String(), "systemd 252") {
		t.Errorf("warning %q does not name both versions", warn.String())
	}
	bad := strings.Replace(manifest, `"252"`, `"new"`, 1)
	if err := os.WriteFile(m, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkNspawn(fake, dir, false, &warn); err == nil || !strings.Contains(err.Error(), "systemd-version") {
		t.Errorf("bad annotation: err %v, want one naming the annotation", err)
	}
}
