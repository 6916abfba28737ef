package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNspawnVersionCache(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	fake := filepath.Join(dir, "systemd-nspawn")
	script := "#!/bin/sh\necho x >>" + count + "\necho 'systemd %s (%s-1)'\n"
	write := func(v string) {
		t.Helper()
		if err := os.WriteFile(fake+".new", []byte(strings.ReplaceAll(script, "%s", v)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(fake+".new", fake); err != nil {
			t.Fatal(err)
		}
	}
	probes := func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "x")
	}
	write("250")
	cache := filepath.Join(dir, "data", "tmp")
	for i := 0; i < 3; i++ {
		if v, err := cachedNspawnVersion(fake, cache); err != nil || v != 250 {
			t.Fatalf("run %d: %d, %v; want 250", i, v, err)
		}
	}
	if n := probes(); n != 1 {
		t.Errorf("nspawn asked %d times for 3 starts, want once", n)
	}
	// An upgrade (a new file in its place) is asked again.
	time.Sleep(10 * time.Millisecond)
	write("256")
	if v, err := cachedNspawnVersion(fake, cache); err != nil || v != 256 {
		t.Errorf("after the upgrade: %d, %v; want 256", v, err)
	}
	if n := probes(); n != 2 {
		t.Errorf("nspawn asked %d times, want 2", n)
	}
	// A damaged cache is a miss, not an error.
	if err := os.WriteFile(filepath.Join(cache, NspawnVersionCache), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := cachedNspawnVersion(fake, cache); err != nil || v != 256 {
		t.Errorf("damaged cache: %d, %v; want 256", v, err)
	}
	// No dir: no cache, always asked.
	if v, err := cachedNspawnVersion(fake, ""); err != nil || v != 256 {
		t.Errorf("no cache dir: %d, %v", v, err)
	}
	if n := probes(); n != 4 {
		t.Errorf("nspawn asked %d times, want 4", n)
	}
}

func TestNspawnCacheDir(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/rkt/pods/run/1234":      "/var/lib/rkt/tmp",
		"/var/lib/rkt/pods/prepared/1234": "",
		"/tmp/x/pod":                      "",
	} {
		if got := nspawnCacheDir(in); got != want {
			t.Errorf("nspawnCacheDir(%q) = %q, want %q", in, got, want)
		}
	}
}
