package stage2

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolveInKeepsSymlinksInsideRoot(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "real/dir"), 0o755))
	must(os.Symlink("/etc", filepath.Join(root, "abs")))
	must(os.Symlink("../../../../..", filepath.Join(root, "up")))
	must(os.Symlink("real/dir", filepath.Join(root, "rel")))
	must(os.Symlink("loop2", filepath.Join(root, "loop1")))
	must(os.Symlink("loop1", filepath.Join(root, "loop2")))
	for in, want := range map[string]string{
		"/abs/passwd":    "etc/passwd",
		"/up/etc/shadow": "etc/shadow",
		"/rel/x":         "real/dir/x",
		"/../../etc":     "etc",
		"/missing/a/b":   "missing/a/b",
	} {
		got, err := ResolveIn(root, in)
		if err != nil {
			t.Errorf("ResolveIn(%s): %v", in, err)
			continue
		}
		if got != filepath.Join(root, want) {
			t.Errorf("ResolveIn(%s) = %s, want %s", in, got, filepath.Join(root, want))
		}
	}
	if _, err := ResolveIn(root, "/loop1"); err == nil {
		t.Error("a symlink loop resolved")
	}
}

func TestResolveUserAndGroup(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/:/bin/sh\nweb:x:33:34::/var/www:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nwww:x:34:\n"), 0o644)
	os.WriteFile(filepath.Join(root, "owned"), nil, 0o644)
	if err := os.Chown(filepath.Join(root, "owned"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, group string
		uid, gid    int
	}{
		{"web", "www", 33, 34},
		{"0", "0", 0, 0},
		{"4242", "4343", 4242, 4343},
		{"/owned", "/owned", 1234, 5678},
	} {
		uid, err := ResolveUser(root, tc.user)
		if err != nil || uid != tc.uid {
			t.Errorf("ResolveUser(%q) = %d, %v; want %d", tc.user, uid, err, tc.uid)
		}
		gid, err := ResolveGroup(root, tc.group)
		if err != nil || gid != tc.gid {
			t.Errorf("ResolveGroup(%q) = %d, %v; want %d", tc.group, gid, err, tc.gid)
		}
	}
	if _, err := ResolveUser(root, "nobody"); !errors.Is(err, ErrUnknownID) {
		t.Errorf("unknown user: %v, want ErrUnknownID", err)
	}
	if _, err := ResolveGroup(t.TempDir(), "www"); !errors.Is(err, ErrUnknownID) {
		t.Errorf("image without /etc/group: %v, want ErrUnknownID", err)
	}
}
