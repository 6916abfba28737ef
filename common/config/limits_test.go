package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{"4096": 4096, "512M": 512 << 20, "512MiB": 512 << 20, "64G": 64 << 30, "1TiB": 1 << 40, "3KB": 3 << 10} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "-1G", "1X", "G", "1.5G", "99999999999T"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) accepted", s)
		}
	}
}

func TestSizeLimitsInPaths(t *testing.T) {
	sys, local := t.TempDir(), t.TempDir()
	write := func(dir, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "paths.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "paths.d", "limits.json"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(sys, `{"rktKind":"paths","rktVersion":"v1","image-size-limit":"1GiB","rendered-size-limit":2048}`)
	write(local, `{"rktKind":"paths","rktVersion":"v1","image-size-limit":"2G"}`)
	cfg, err := Load(sys, local, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Paths.ImageSizeLimit != 2<<30 || cfg.Paths.RenderedSizeLimit != 2048 {
		t.Errorf("limits %+v: want the local image limit and the system rendered one", cfg.Paths)
	}
	write(local, `{"rktKind":"paths","rktVersion":"v1","image-size-limit":"lots"}`)
	if _, err := Load(sys, local, ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "image-size-limit") {
		t.Errorf("bad limit: %v", err)
	}
}
