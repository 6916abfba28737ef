package testutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestIDs(t *testing.T) {
	if !IsUUID("0123abcd-0000-4000-8000-00000000ffff") || IsUUID("0123ABCD-0000-4000-8000-00000000ffff") || IsUUID("0123abcd") {
		t.Error("IsUUID")
	}
	id := "sha512-"
	for i := 0; i < 128; i++ {
		id += "a"
	}
	if !IsImageID(id) || IsImageID(id[:20]) || IsImageID("sha256-"+id[7:]) {
		t.Error("IsImageID")
	}
}

// TestMountsUnder mounts a tmpfs with a space in its path and finds it,
// then lets ForceUnmountUnder remove it.
func TestMountsUnder(t *testing.T) {
	RequireRoot(t)
	dir := t.TempDir()
	mp := filepath.Join(dir, "a b", "c")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mp, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(mp, syscall.MNT_DETACH) })
	if got := MountsUnder(dir); len(got) != 1 || got[0] != mp {
		t.Fatalf("MountsUnder(%s) = %q, want [%s]", dir, got, mp)
	}
	if got := MountsUnder(dir + "x"); len(got) != 0 {
		t.Errorf("MountsUnder of a sibling prefix found %q", got)
	}
	ForceUnmountUnder(dir)
	if got := MountsUnder(dir); len(got) != 0 {
		t.Errorf("after ForceUnmountUnder: %q", got)
	}
}

func TestStripLogPrefixes(t *testing.T) {
	in := "[ 4608.946694] hello[2]: msg\n[    1.000001] app-x: no pid\nplain [ 1.0] x[1]: stays\n[ 4608.9] hello[2]: a: b\n"
	want := "msg\nno pid\nplain [ 1.0] x[1]: stays\na: b\n"
	if got := StripLogPrefixes(in); got != want {
		t.Errorf("StripLogPrefixes:\n got %q\nwant %q", got, want)
	}
}
