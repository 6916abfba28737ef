package layercache

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCache(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	work := t.TempDir()
	const a, b = "sha256:aaaa", "sha256:bbbb"
	if c.Lookup(a, 3, filepath.Join(work, "0")) {
		t.Fatal("an empty cache gave a layer")
	}
	for _, d := range []string{a, b} {
		f := filepath.Join(work, d)
		if err := os.WriteFile(f, []byte("abc"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.Keep(d, f)
	}
	if c.Lookup(a, 4, filepath.Join(work, "1")) {
		t.Error("a cached layer of the wrong size was given")
	}
	if !c.Lookup(a, 3, filepath.Join(work, "2")) {
		t.Fatal("a kept layer was not given back")
	}
	if b, err := os.ReadFile(filepath.Join(work, "2")); err != nil || string(b) != "abc" {
		t.Fatalf("given layer: %q, %v", b, err)
	}
	if err := c.Record("sha512-one", []string{a}); err != nil {
		t.Fatal(err)
	}
	if err := c.Record("../x", []string{a}); err == nil {
		t.Error("a key with a slash was recorded")
	}
	// b is named by no image: pruned; a by an image that exists: kept.
	exists := map[string]bool{"sha512-one": true}
	n, err := c.Prune(func(k string) bool { return exists[k] })
	if err != nil || n != 1 {
		t.Fatalf("prune: %d, %v; want 1 layer removed", n, err)
	}
	if !c.Lookup(a, 3, filepath.Join(work, "3")) || c.Lookup(b, 3, filepath.Join(work, "4")) {
		t.Error("prune kept the wrong layers")
	}
	// The image goes: its record and then its layer go.
	exists["sha512-one"] = false
	if n, err := c.Prune(func(k string) bool { return exists[k] }); err != nil || n != 1 {
		t.Fatalf("prune after the image went: %d, %v", n, err)
	}
	if _, err := os.Stat(c.record("sha512-one")); !os.IsNotExist(err) {
		t.Errorf("the removed image's record is still there: %v", err)
	}
	// A conversion's own link survives the prune.
	if b, err := os.ReadFile(filepath.Join(work, "3")); err != nil || string(b) != "abc" {
		t.Errorf("the conversion's link: %q, %v", b, err)
	}
}
