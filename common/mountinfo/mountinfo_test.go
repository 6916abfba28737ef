package mountinfo

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/tests/testutil/asroot"
)

const sample = `22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
40 28 0:35 /sub\040dir /mnt/with\040space\011tab rw master:3 propagate_from:2 - tmpfs my\134src rw,size=10k
41 40 0:36 / /mnt/with\040space\011tab/inner rw - proc proc rw
`

func TestParse(t *testing.T) {
	infos, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 4 {
		t.Fatalf("got %d entries, want 4", len(infos))
	}
	in := infos[2]
	if in.ID != 40 || in.ParentID != 28 || in.Major != 0 || in.Minor != 35 {
		t.Errorf("ids: %+v", in)
	}
	if in.Root != "/sub dir" || in.MountPoint != "/mnt/with space\ttab" {
		t.Errorf("unescaped paths: root %q mount point %q", in.Root, in.MountPoint)
	}
	if in.FSType != "tmpfs" || in.Source != `my\src` || in.SuperOptions != "rw,size=10k" || in.Options != "rw" {
		t.Errorf("fields: %+v", in)
	}
	if len(in.Optional) != 2 || in.Optional[0] != "master:3" || in.Optional[1] != "propagate_from:2" {
		t.Errorf("optional fields: %q", in.Optional)
	}
	if len(infos[3].Optional) != 0 {
		t.Errorf("no optional fields expected: %q", infos[3].Optional)
	}
}

func TestParseMalformed(t *testing.T) {
	for _, line := range []string{
		"22 28 0:20 / /sys rw shared:7 sysfs sysfs rw",
		"x 28 0:20 / /sys rw - sysfs sysfs rw",
		"22 28 020 / /sys rw - sysfs sysfs rw",
	} {
		if _, err := Parse(strings.NewReader(line + "\n")); err == nil {
			t.Errorf("%q: no error", line)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:        "plain",
		`a\040b`:       "a b",
		`a\012b\134`:   "a\nb\\",
		`trailing\04`:  `trailing\04`,
		`bad\999`:      `bad\999`,
		`\011\011`:     "\t\t",
		`back\\040sl`:  `back\ sl`,
		`end\`:         `end\`,
		`high\400byte`: `high\400byte`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnderOrder(t *testing.T) {
	infos := []Info{
		{ID: 1, MountPoint: "/"},
		{ID: 2, MountPoint: "/pod"},
		{ID: 3, MountPoint: "/pod/a"},
		{ID: 4, MountPoint: "/pod/a/b"},
		{ID: 5, MountPoint: "/pod/a"},
		{ID: 6, MountPoint: "/podx"},
		{ID: 7, MountPoint: "/pod/c"},
	}
	var got []int
	for _, in := range Under(infos, "/pod") {
		got = append(got, in.ID)
	}
	want := []int{4, 7, 5, 3, 2}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestMountErrorNamesEverything(t *testing.T) {
	e := &MountError{Op: "mount", Source: "/src", Target: "/dst", FSType: "tmpfs",
		Flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, Data: "size=1m", Err: unix.EPERM}
	msg := e.Error()
	for _, part := range []string{"mount", "/src", "/dst", "tmpfs", "MS_BIND", "MS_REC", "MS_RDONLY", "size=1m", unix.EPERM.Error()} {
		if !strings.Contains(msg, part) {
			t.Errorf("%q does not name %q", msg, part)
		}
	}
	if !errors.Is(e, unix.EPERM) {
		t.Error("MountError does not unwrap to its errno")
	}
}

// mustMount creates target and mounts source on it, failing the test (but
// not stopping it: callers run on their own thread) when either fails.
func mustMount(t *testing.T, source, target, fstype string, flags uintptr) {
	t.Helper()
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Error(err)
	}
	if err := Mount(source, target, fstype, flags, ""); err != nil {
		t.Error(err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	asroot.Require(t, "mounts")
}

// inPrivateNamespace runs body on a thread with its own mount namespace,
// so that a failing test cannot leave mounts on the host, and waits for it.
func inPrivateNamespace(t *testing.T, body func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is never unlocked: the runtime discards it when
		// the goroutine ends, together with its namespace.
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		if err := Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Error(err)
			return
		}
		body()
	}()
	<-done
}

func TestUnmountUnder(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	inPrivateNamespace(t, func() {
		pod := filepath.Join(dir, "pod dir")
		src := filepath.Join(dir, "src")
		for _, d := range []string{pod, src, filepath.Join(src, "x")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Error(err)
				return
			}
		}
		mustMount(t, "tmpfs", filepath.Join(pod, "t"), "tmpfs", 0)
		mustMount(t, src, filepath.Join(pod, "t", "bind"), "", unix.MS_BIND)
		mustMount(t, "tmpfs", filepath.Join(pod, "t", "bind", "x"), "tmpfs", 0)
		mustMount(t, "tmpfs", filepath.Join(pod, "t"), "tmpfs", 0) // stacked
		mustMount(t, src, filepath.Join(pod, "rbind"), "", unix.MS_BIND|unix.MS_REC)
		// A busy mount: an open directory on it needs MNT_DETACH.
		busy, err := os.Open(filepath.Join(pod, "rbind"))
		if err != nil {
			t.Error(err)
			return
		}
		defer busy.Close()
		if t.Failed() {
			return
		}
		infos, err := Read()
		if err != nil {
			t.Error(err)
			return
		}
		if n := len(Under(infos, pod)); n < 5 {
			t.Errorf("expected at least 5 mounts under %s, got %d", pod, n)
		}
		if err := UnmountUnder(pod); err != nil {
			t.Errorf("UnmountUnder: %v", err)
		}
		infos, err = Read()
		if err != nil {
			t.Error(err)
			return
		}
		if left := Under(infos, pod); len(left) != 0 {
			t.Errorf("mounts left: %+v", left)
		}
		if err := os.RemoveAll(pod); err != nil {
			t.Errorf("pod directory not removable: %v", err)
		}
		// The bind sources were not touched.
		if _, err := os.Stat(filepath.Join(src, "x")); err != nil {
			t.Errorf("bind source damaged: %v", err)
		}
		// Nothing under a missing path is fine.
		if err := UnmountUnder(filepath.Join(dir, "missing")); err != nil {
			t.Errorf("UnmountUnder(missing): %v", err)
		}
	})
}

func TestMountErrorFromSyscall(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	err := Mount(filepath.Join(dir, "nonexistent"), filepath.Join(dir, "also-missing"), "", unix.MS_BIND, "")
	var me *MountError
	if !errors.As(err, &me) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("got %v, want a *MountError wrapping ENOENT", err)
	}
	if me.Op != "mount" || me.Flags != unix.MS_BIND {
		t.Errorf("MountError fields: %+v", me)
	}
	err = Unmount(dir, 0)
	if !errors.As(err, &me) || !errors.Is(err, unix.EINVAL) || me.Op != "unmount" {
		t.Fatalf("got %v, want an unmount *MountError wrapping EINVAL", err)
	}
}

// The kernel's octal escapes, and what is not one (kept as written).
func TestUnescapeCases(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:             "/plain",
		`/with\040space`:     "/with space",
		`/tab\011and\134bs`:  "/tab\tand\\bs",
		`/trailing\04`:       `/trailing\04`,
		`/not\999octal\040x`: `/not\999octal x`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUnmountUnderEach unmounts several pod directories' mounts in one
// batch: each comes back clean, a sibling outside the batch keeps its mount
// and a missing path is no error.
func TestUnmountUnderEach(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	inPrivateNamespace(t, func() {
		src := filepath.Join(dir, "src")
		keep := filepath.Join(dir, "pods", "keep")
		var pods []string
		for _, n := range []string{"a", "b", "c"} {
			pods = append(pods, filepath.Join(dir, "pods", n))
		}
		for _, d := range append([]string{src, filepath.Join(src, "x"), keep}, pods...) {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Error(err)
				return
			}
		}
		for _, p := range pods[:2] {
			mustMount(t, "tmpfs", filepath.Join(p, "t"), "tmpfs", 0)
			mustMount(t, src, filepath.Join(p, "t", "bind"), "", unix.MS_BIND)
			mustMount(t, "tmpfs", filepath.Join(p, "t"), "tmpfs", 0) // stacked
		}
		mustMount(t, "tmpfs", keep, "tmpfs", 0)
		if t.Failed() {
			return
		}
		errs := UnmountUnderEach(append(pods, filepath.Join(dir, "missing")))
		for i, err := range errs {
			if err != nil {
				t.Errorf("path %d: %v", i, err)
			}
		}
		infos, err := Read()
		if err != nil {
			t.Error(err)
			return
		}
		for _, p := range pods {
			if left := Under(infos, p); len(left) != 0 {
				t.Errorf("mounts left under %s: %+v", p, left)
			}
		}
		if len(Under(infos, keep)) != 1 {
			t.Errorf("the mount on %s, not in the batch, was touched", keep)
		}
		if _, err := os.Stat(filepath.Join(src, "x")); err != nil {
			t.Errorf("bind source damaged: %v", err)
		}
	})
}
