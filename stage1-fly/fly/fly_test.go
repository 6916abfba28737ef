package fly

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/mountinfo"
	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil/asroot"
)

// The tests build fly's image and a static probe app, lay out pods with the
// conformance suite's pod builder (common/stage1/stage1test) and run the
// entrypoints as stage0 would.

var flyImage, probeBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // the tests skip
	}
	dir, err := os.MkdirTemp("", "fly-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	flyImage, probeBin = filepath.Join(dir, "image"), filepath.Join(dir, "probe")
	// fly's image, packed as build.sh packs it.
	pack := exec.Command(goTool(), "run", "../../aci/acibuild/mkstage1", "--dir", flyImage, "fly")
	if out, err := pack.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "packing fly: %v\n%s", err, out)
		return 1
	}
	cmd := exec.Command(goTool(), "build", "-o", probeBin, "./testdata/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the probe: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// goTool is the go command that runs this test.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

func requireRoot(t testing.TB) {
	t.Helper()
	asroot.Require(t, "fly needs mount namespaces and chroot")
}

// TestConformance runs the stage1 contract's suite on fly.
func TestConformance(t *testing.T) {
	requireRoot(t)
	stage1test.Suite(t, flyImage, stage1test.Fly)
}

// testPod is the suite's pod with one app, probe, and short names for
// what fly's tests change before the run.
type testPod struct {
	*stage1test.Pod
	t      testing.TB
	dir    string // the pod directory
	rootfs string // the app's rootfs
	pm     *schema.PodManifest
	im     *schema.ImageManifest
}

const appName = "probe"

// newPod lays out a pod with one app running /bin/probe ARGS as root; the
// image's app runs /bin/probe, with environment variables the pod's
// overrides in part.
func newPod(t testing.TB, args ...string) *testPod {
	requireRoot(t)
	p := stage1test.NewPod(t, flyImage, []stage1test.App{{
		Name:  appName,
		Exec:  []string{"/bin/probe"},
		Env:   map[string]string{"FROM_IMAGE": "image", "OVERRIDDEN": "image"},
		Files: map[string]string{"/bin/probe": probeBin},
		Text: map[string]string{
			"/etc/passwd":      "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
			"/etc/group":       "root:x:0:\nstaff:x:50:alice\n",
			"/etc/hosts":       "10.0.0.1 image-hosts\n",
			"/etc/resolv.conf": "nameserver 10.0.0.53\n",
		},
	}})
	tp := &testPod{Pod: p, t: t, dir: p.Dir, rootfs: p.Rootfs(appName), pm: p.Manifest, im: p.Images[appName]}
	must(t, os.MkdirAll(filepath.Join(tp.rootfs, "work"), 0o755))
	tp.im.Name = "example.com/probe"
	app := tp.app()
	app.Exec = append(types.Exec{"probe"}, args...)
	app.Environment = types.Environment{{Name: "OVERRIDDEN", Value: "pod"}, {Name: "FROM_POD", Value: "pod"}}
	return tp
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (tp *testPod) app() *types.App { return tp.App(appName) }

// command prepares an entrypoint run from the pod directory.
func (tp *testPod) command(entry string, args ...string) *exec.Cmd {
	return tp.Command(entry, args...)
}

// run runs the pod to its end and returns stdout, stderr and exit status;
// the lock and every mount fly made must be gone by then.
func (tp *testPod) run(runArgs ...string) (string, string, int) {
	tp.t.Helper()
	r := tp.Run(append(runArgs, "--net=default")...)
	tp.checkNoMounts()
	if tp.Locked() {
		tp.t.Errorf("pod still locked after the app ended")
	}
	return r.Stdout, r.Stderr, r.Code
}

func exitCode(t testing.TB, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// checkNoMounts: every mount fly made lived in the app's namespace.
func (tp *testPod) checkNoMounts() {
	tp.t.Helper()
	infos, err := mountinfo.Read()
	must(tp.t, err)
	if left := mountinfo.Under(infos, tp.dir); len(left) > 0 {
		tp.t.Errorf("mounts left on the host: %+v", left)
		mountinfo.UnmountUnder(tp.dir)
	}
}

func wantCode(t *testing.T, code, want int, stdout, stderr string) {
	t.Helper()
	if code != want {
		t.Fatalf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, want, stdout, stderr)
	}
}

func TestRunOutputAndExitStatus(t *testing.T) {
	tp := newPod(t, "echo", "hello from the app", ";", "exit", "7")
	stdout, stderr, code := tp.run()
	wantCode(t, code, 7, stdout, stderr)
	if stdout != "hello from the app\n" {
		t.Errorf("stdout %q", stdout)
	}
	if stderr != "" {
		t.Errorf("unexpected stderr %q", stderr)
	}
	b, err := os.ReadFile(filepath.Join(tp.dir, pod.PIDFile))
	if err != nil || len(b) == 0 {
		t.Errorf("pid file: %q %v", b, err)
	}
}

func TestRunEnvironmentAndDescriptors(t *testing.T) {
	tp := newPod(t, "env", ";", "fds")
	stdout, stderr, code := tp.run()
	wantCode(t, code, 0, stdout, stderr)
	for _, want := range []string{
		"PATH=" + defaultPath, "AC_APP_NAME=probe", "container=rkt",
		"FROM_IMAGE=image", "FROM_POD=pod", "OVERRIDDEN=pod",
		"fds=[3->" + tp.dir + "]",
	} {
		if !strings.Contains(stdout, want+"\n") {
			t.Errorf("missing %q in\n%s", want, stdout)
		}
	}
	for _, bad := range []string{"RKT_LOCK_FD", "OVERRIDDEN=image", "HOME="} {
		if strings.Contains(stdout, bad) {
			t.Errorf("%q leaked into the app environment:\n%s", bad, stdout)
		}
	}
	// An image PATH wins over the default.
	tp = newPod(t, "env")
	tp.app().Environment = append(tp.app().Environment, types.EnvironmentVariable{Name: "PATH", Value: "/bin"})
	stdout, stderr, code = tp.run()
	wantCode(t, code, 0, stdout, stderr)
	if !strings.Contains(stdout, "PATH=/bin\n") {
		t.Errorf("PATH not overridden:\n%s", stdout)
	}
}

func TestRunUserGroupWorkingDir(t *testing.T) {
	for _, tc := range []struct {
		user, group string
		want        string
	}{
		{"1000", "50", "uid=1000 gid=50 groups=[7 8]"},
		{"alice", "staff", "uid=1000 gid=50 groups=[7 8]"},
		{"/owned", "/owned", "uid=1234 gid=4321 groups=[7 8]"},
	} {
		tp := newPod(t, "id", ";", "pwd")
		must(t, os.WriteFile(filepath.Join(tp.rootfs, "owned"), nil, 0o644))
		must(t, os.Chown(filepath.Join(tp.rootfs, "owned"), 1234, 4321))
		a := tp.app()
		a.User, a.Group, a.SupplementaryGIDs, a.WorkingDirectory = tc.user, tc.group, []int{8, 7}, "/work"
		stdout, stderr, code := tp.run()
		wantCode(t, code, 0, stdout, stderr)
		if want := tc.want + "\n/work\n"; stdout != want {
			t.Errorf("%s:%s: got %q, want %q", tc.user, tc.group, stdout, want)
		}
	}
	tp := newPod(t, "id")
	tp.app().User = "nobody-here"
	stdout, stderr, code := tp.run()
	wantCode(t, code, exitStage1Failure, stdout, stderr)
	if !strings.Contains(stderr, `"nobody-here"`) || !strings.Contains(stderr, "/etc/passwd") {
		t.Errorf("unclear error for an unknown user: %q", stderr)
	}
}

func TestRunVolumes(t *testing.T) {
	tp := newPod(t,
		"write", "/rw/out", "x", ";", "write", "/ro/out", "x", ";", "write", "/ro/sub/out", "x", ";",
		"cat", "/ro/in", ";", "stat", "/empty", ";", "write", "/empty/f", "x", ";", "cat", "/single",
		";", "cat", "/from-image/in", ";", "stat", "/deep/new/dir")
	host := t.TempDir()
	rw, ro := filepath.Join(host, "rw"), filepath.Join(host, "ro")
	must(t, os.MkdirAll(filepath.Join(ro, "sub"), 0o755))
	must(t, os.MkdirAll(rw, 0o755))
	must(t, os.WriteFile(filepath.Join(ro, "in"), []byte("read-only content\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(host, "single"), []byte("single file\n"), 0o644))
	// A submount in the read-only volume must be read-only too (recursive).
	must(t, mountinfo.Mount("tmpfs", filepath.Join(ro, "sub"), "tmpfs", 0, ""))
	t.Cleanup(func() { mountinfo.UnmountUnder(host) })

	yes := true
	mode, uid, gid := "0750", 1000, 50
	tp.pm.Volumes = []types.Volume{
		{Name: "rw", Kind: "host", Source: rw},
		{Name: "ro", Kind: "host", Source: ro, ReadOnly: &yes},
		{Name: "empty", Kind: "empty", Mode: &mode, UID: &uid, GID: &gid},
		{Name: "single", Kind: "host", Source: filepath.Join(host, "single")},
		{Name: "img", Kind: "host", Source: ro},
		{Name: "deep", Kind: "host", Source: rw},
	}
	tp.pm.Apps[0].Mounts = []schema.Mount{
		{Volume: "rw", Path: "/rw"}, {Volume: "ro", Path: "/ro"}, {Volume: "empty", Path: "/empty"},
		{Volume: "single", Path: "/single"}, {Volume: "deep", Path: "/deep/new"},
	}
	// A mount point only the image declares, filled by the volume of its name.
	tp.im.App.MountPoints = []types.MountPoint{{Name: "img", Path: "/from-image"}}
	must(t, os.Mkdir(filepath.Join(rw, "dir"), 0o755))

	stdout, stderr, code := tp.run()
	wantCode(t, code, 0, stdout, stderr)
	for _, want := range []string{
		"wrote /rw/out\n",
		"write /ro/out: open /ro/out: read-only file system\n",
		"write /ro/sub/out: open /ro/sub/out: read-only file system\n",
		"read-only content\n",
		"/empty mode=750 uid=1000 gid=50\n",
		"wrote /empty/f\n",
		"single file\n",
		"/deep/new/dir mode=755",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("missing %q in\n%s", want, stdout)
		}
	}
	if n := strings.Count(stdout, "read-only content\n"); n != 2 {
		t.Errorf("ro volume read %d times, want 2 (/ro and the image's mount point)", n)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "out")); err != nil || string(b) != "x" {
		t.Errorf("write to the rw volume not on the host: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(pod.EmptyVolumePath(tp.dir, "empty"), "f")); err != nil || string(b) != "x" {
		t.Errorf("empty volume not in the pod directory: %q %v", b, err)
	}
	// The mount targets were created in the image, nothing on the host.
	if _, err := os.Stat(filepath.Join(tp.rootfs, "deep", "new")); err != nil {
		t.Errorf("mount target not created: %v", err)
	}
}

func TestRunReadOnlyRootfsAndSymlinkEscape(t *testing.T) {
	tp := newPod(t, "write", "/file", "x", ";", "write", "/tmp/file", "x", ";", "cat", "/escape/marker")
	tp.pm.Apps[0].ReadOnlyRootFS = true
	// A symlink in the image pointing at an absolute path must resolve
	// inside the rootfs, not on the host.
	host := t.TempDir()
	must(t, os.WriteFile(filepath.Join(host, "marker"), []byte("volume\n"), 0o644))
	must(t, os.Symlink("/../../../target", filepath.Join(tp.rootfs, "escape")))
	tp.pm.Volumes = []types.Volume{{Name: "v", Kind: "host", Source: host}}
	tp.pm.Apps[0].Mounts = []schema.Mount{{Volume: "v", Path: "/escape"}}
	stdout, stderr, code := tp.run()
	wantCode(t, code, 0, stdout, stderr)
	for _, want := range []string{"write /file: open /file: read-only file system\n", "wrote /tmp/file\n", "volume\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("missing %q in\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(tp.rootfs, "target")); err != nil {
		t.Errorf("symlinked target not created inside the rootfs: %v", err)
	}
	if _, err := os.Stat("/target"); err == nil {
		t.Error("a symlink in the image made fly create /target on the host")
		os.Remove("/target")
	}
}

func TestRunDNSConfModes(t *testing.T) {
	hostResolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Skip("host has no /etc/resolv.conf")
	}
	hostHosts, _ := os.ReadFile("/etc/hosts")
	for _, tc := range []struct {
		mode         string
		resolv, host string
	}{
		{"", "nameserver 10.0.0.53\n", "10.0.0.1 image-hosts\n"},
		{"resolv=none,hosts=none", "nameserver 10.0.0.53\n", "10.0.0.1 image-hosts\n"},
		{"resolv=host,hosts=host", string(hostResolv), string(hostHosts)},
		{"resolv=stage0,hosts=stage0", "nameserver 10.9.9.9\n", "10.9.9.10 from-stage0\n"},
	} {
		tp := newPod(t, "cat", "/etc/resolv.conf", ";", "cat", "/etc/hosts", ";", "write", "/etc/resolv.conf", "x")
		s1etc := filepath.Join(pod.Stage1RootfsPath(tp.dir), "etc")
		must(t, os.MkdirAll(s1etc, 0o755))
		must(t, os.WriteFile(filepath.Join(s1etc, "rkt-resolv.conf"), []byte("nameserver 10.9.9.9\n"), 0o644))
		must(t, os.WriteFile(filepath.Join(s1etc, "rkt-hosts"), []byte("10.9.9.10 from-stage0\n"), 0o644))
		var args []string
		if tc.mode != "" {
			args = append(args, "--dns-conf-mode="+tc.mode)
		}
		stdout, stderr, code := tp.run(args...)
		wantCode(t, code, 0, stdout, stderr)
		want := tc.resolv + tc.host
		if !strings.HasPrefix(stdout, want) {
			t.Errorf("mode %q: got\n%s\nwant prefix\n%s", tc.mode, stdout, want)
		}
		bound := strings.HasPrefix(tc.mode, "resolv=host") || strings.HasPrefix(tc.mode, "resolv=stage0")
		if ro := strings.Contains(stdout, "read-only file system"); ro != bound {
			t.Errorf("mode %q: resolv.conf read-only %v, want %v", tc.mode, ro, bound)
		}
	}
	// default hosts mode: an image without /etc/hosts gets a localhost one.
	tp := newPod(t, "cat", "/etc/hosts")
	os.Remove(filepath.Join(tp.rootfs, "etc", "hosts"))
	stdout, stderr, code := tp.run()
	wantCode(t, code, 0, stdout, stderr)
	if !strings.HasPrefix(stdout, "127.0.0.1 localhost") {
		t.Errorf("default /etc/hosts: %q", stdout)
	}
}

func TestRunFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(tp *testPod)
		want  []string
	}{
		{"missing working directory", func(tp *testPod) { tp.app().WorkingDirectory = "/nope" },
			[]string{"working directory /nope", "no such file or directory"}},
		{"missing volume source", func(tp *testPod) {
			tp.pm.Volumes = []types.Volume{{Name: "data", Kind: "host", Source: "/nonexistent/src"}}
			tp.pm.Apps[0].Mounts = []schema.Mount{{Volume: "data", Path: "/data"}}
		}, []string{`volume "data"`, "/nonexistent/src", "no such file or directory"}},
		{"mount point without volume", func(tp *testPod) {
			tp.app().MountPoints = []types.MountPoint{{Name: "db", Path: "/db"}}
		}, []string{`mount point "db"`, `no volume named "db"`}},
		{"two apps", func(tp *testPod) {
			second := tp.pm.Apps[0]
			second.Name = "second"
			tp.pm.Apps = append(tp.pm.Apps, second)
		}, []string{"exactly one app", "probe, second"}},
		{"executable not found", func(tp *testPod) { tp.app().Exec = types.Exec{"no-such-binary"} },
			[]string{`"no-such-binary" not found in PATH`}},
		{"private users", nil, []string{"--private-users"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newPod(t, "exit", "0")
			var args []string
			if tc.setup != nil {
				tc.setup(tp)
			} else {
				args = []string{"--private-users=0:65536"}
			}
			stdout, stderr, code := tp.run(args...)
			wantCode(t, code, exitStage1Failure, stdout, stderr)
			if strings.Count(stderr, "\n") != 1 {
				t.Errorf("want one error line, got %q", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("error %q does not mention %q", stderr, w)
				}
			}
		})
	}
}

func TestRunIsolatorWarnings(t *testing.T) {
	tp := newPod(t, "exit", "0")
	var mem, cpu types.Isolator
	must(t, mem.UnmarshalJSON([]byte(`{"name":"resource/memory","value":{"limit":"1G"}}`)))
	must(t, cpu.UnmarshalJSON([]byte(`{"name":"resource/cpu","value":{"limit":"1"}}`)))
	tp.app().Isolators = types.Isolators{mem, cpu}
	tp.pm.Isolators = []types.Isolator{mem}
	stdout, stderr, code := tp.run()
	wantCode(t, code, 0, stdout, stderr)
	if strings.Count(stderr, "resource/memory") != 1 || strings.Count(stderr, "resource/cpu") != 1 || strings.Count(stderr, "\n") != 2 {
		t.Errorf("want one warning per isolator, got %q", stderr)
	}
}

// startWaiting runs an app that reports "ready" and waits for SIGTERM.
func startWaiting(t *testing.T, tp *testPod) *stage1test.Running {
	t.Helper()
	r := tp.Start("--net=default")
	r.WaitOutput("ready\n", 30*time.Second)
	return r
}

func TestStop(t *testing.T) {
	for _, force := range []bool{false, true} {
		tp := newPod(t, "write", "/tmp/marker", "in the app's namespace", ";", "wait", "30")
		run := startWaiting(t, tp)
		if !tp.Locked() {
			t.Fatal("pod not locked while its app runs")
		}
		args := []string{tp.UUID}
		want := 42 // the probe's SIGTERM handler
		if force {
			args = append([]string{"--force"}, args...)
			want = 128 + int(syscall.SIGKILL)
		}
		if out, err := tp.command("stop", args...).CombinedOutput(); err != nil {
			t.Fatalf("stop: %v %s", err, out)
		}
		if code := run.Wait(30 * time.Second).Code; code != want {
			t.Errorf("force=%v: app exit status %d, want %d", force, code, want)
		}
		tp.checkNoMounts()
		if tp.Locked() {
			t.Errorf("pod still locked after the app ended")
		}
		// Stopping an ended pod succeeds (and does not signal anyone).
		if out, err := tp.command("stop", args...).CombinedOutput(); err != nil {
			t.Errorf("stop of an ended pod: %v %s", err, out)
		}
	}
}

func TestEnter(t *testing.T) {
	tp := newPod(t, "write", "/tmp/marker", "in the app's namespace", ";", "wait", "30")
	a := tp.app()
	a.User, a.Group, a.WorkingDirectory = "alice", "staff", "/work"
	run := startWaiting(t, tp)
	pid := run.Cmd.Process.Pid
	if b, _ := os.ReadFile(filepath.Join(tp.dir, pod.PIDFile)); string(b) != fmt.Sprint(pid) {
		t.Errorf("pid file %q, want the app's pid %d", b, pid)
	}
	enterArgs := stage1.EnterArgs{PID: pid, AppName: appName, Cmd: []string{"probe", "cat", "/tmp/marker", ";", "id", ";", "pwd", ";", "env", ";", "exit", "3"}}
	en := tp.command("enter", enterArgs.Args()...)
	out, err := en.CombinedOutput()
	if code := exitCode(t, err); code != 3 {
		t.Fatalf("enter exit status %d, want 3: %s", code, out)
	}
	for _, want := range []string{"in the app's namespace", "uid=1000 gid=50 groups=[]\n", "/work\n", "AC_APP_NAME=probe\n", "FROM_POD=pod\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("enter output lacks %q:\n%s", want, out)
		}
	}
	// Without a pod directory, enter takes the app process's settings.
	en = exec.Command(filepath.Join(pod.Stage1RootfsPath(tp.dir), "enter"), "--pid="+fmt.Sprint(pid), "--", "/bin/probe", "cat", "/tmp/marker", ";", "env")
	en.Dir = t.TempDir()
	out, err = en.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "in the app's namespace") || !strings.Contains(string(out), "FROM_IMAGE=image") {
		t.Errorf("enter from outside the pod directory: %v\n%s", err, out)
	}
	// An unknown app is an error.
	bad := stage1.EnterArgs{PID: pid, AppName: "other", Cmd: []string{"probe"}}
	if out, err := tp.command("enter", bad.Args()...).CombinedOutput(); exitCode(t, err) != exitStage1Failure || !strings.Contains(string(out), `"other"`) {
		t.Errorf("enter of an unknown app: %v %s", err, out)
	}
	if out, err := tp.command("stop", "--force", "x").CombinedOutput(); err != nil {
		t.Fatalf("stop: %v %s", err, out)
	}
	run.Wait(30 * time.Second)
	tp.checkNoMounts()
}

func TestGC(t *testing.T) {
	tp := newPod(t)
	if out, err := tp.command("gc", "--debug", tp.UUID).CombinedOutput(); err != nil {
		t.Errorf("gc: %v %s", err, out)
	}
	if out, err := tp.command("gc").CombinedOutput(); exitCode(t, err) != exitStage1Failure {
		t.Errorf("gc without a UUID: %v %s", err, out)
	}
}

// BenchmarkRun: fly's run from exec to the app's exit, for an app that
// exits at once, next to its peer, a bare chroot of the same app: fly's
// own cost is the difference.
func BenchmarkRun(b *testing.B) {
	tp := newPod(b, "exit", "0")
	tp.WriteManifests()
	b.Run("fly", func(b *testing.B) {
		for b.Loop() {
			if r := tp.Start("--net=default").Wait(time.Minute); r.Code != 0 {
				b.Fatalf("run: %v", r)
			}
		}
	})
	b.Run("chroot", func(b *testing.B) {
		for b.Loop() {
			if out, err := exec.Command("chroot", tp.rootfs, "/bin/probe", "exit", "0").CombinedOutput(); err != nil {
				b.Fatalf("chroot: %v %s", err, out)
			}
		}
	})
	tp.checkNoMounts()
}

// fly names pod files itself (see manifests.go); they must match the
// contract's.
func TestPathsMatchLayout(t *testing.T) {
	const dir, app, vol = "/var/lib/rkt/pods/run/x", "web", "data"
	for _, c := range [][2]string{
		{stage1RootfsPath(dir), pod.Stage1RootfsPath(dir)},
		{appRootfsPath(dir, app), pod.AppRootfsPath(dir, app)},
		{appImageManifestPath(dir, app), pod.AppImageManifestPath(dir, app)},
		{emptyVolumePath(dir, vol), pod.EmptyVolumePath(dir, vol)},
		{podManifestFile, pod.ManifestFile},
		{pidFile, pod.PIDFile},
	} {
		if c[0] != c[1] {
			t.Errorf("fly uses %s, the layout says %s", c[0], c[1])
		}
	}
}

// fly's manifest model reads what appc's schema writes.
func TestManifestModel(t *testing.T) {
	tp := newPod(t)
	yes := true
	mode, uid := "0700", 5
	tp.pm.Volumes = []types.Volume{{Name: "v", Kind: "empty", Mode: &mode, UID: &uid, GID: &uid}, {Name: "h", Kind: "host", Source: "/src", ReadOnly: &yes, Recursive: &yes}}
	tp.pm.Apps[0].Mounts = []schema.Mount{{Volume: "v", Path: "/v"}}
	tp.pm.Apps[0].ReadOnlyRootFS = true
	tp.app().SupplementaryGIDs = []int{3}
	tp.app().WorkingDirectory = "/w"
	tp.app().MountPoints = []types.MountPoint{{Name: "h", Path: "/h", ReadOnly: true}}
	tp.WriteManifests()
	pm, err := readPodManifest(tp.dir)
	must(t, err)
	im, err := readImageManifest(tp.dir, appName)
	must(t, err)
	ra := pm.Apps[0]
	a := ra.App
	if ra.Name != appName || !ra.ReadOnlyRootFS || len(ra.Mounts) != 1 || ra.Mounts[0].Path != "/v" ||
		a.User != "0" || a.Group != "0" || a.WorkingDirectory != "/w" || len(a.SupplementaryGIDs) != 1 ||
		a.Exec[0] != "probe" || len(a.MountPoints) != 1 || !a.MountPoints[0].ReadOnly ||
		len(a.Environment) != 2 || a.Environment[1].Value != "pod" {
		t.Errorf("pod manifest read as %+v / %+v", ra, a)
	}
	v, h := pm.Volumes[0], pm.Volumes[1]
	if *v.Mode != "0700" || *v.UID != 5 || *v.GID != 5 || h.Source != "/src" || !*h.ReadOnly || !*h.Recursive {
		t.Errorf("volumes read as %+v %+v", v, h)
	}
	if im == nil || im.Name != "example.com/probe" || im.App.Environment[0].Name != "FROM_IMAGE" {
		t.Errorf("image manifest read as %+v", im)
	}
}

// The packed image's manifest is a valid stage1 image manifest naming the
// entrypoints this binary answers to.
func TestImageManifest(t *testing.T) {
	requireRoot(t) // TestMain packs the image only as root
	b, err := os.ReadFile(filepath.Join(flyImage, "manifest"))
	must(t, err)
	var im schema.ImageManifest
	must(t, im.UnmarshalJSON(b))
	if im.Name != stage1.NameFly {
		t.Errorf("name %s, want %s", im.Name, stage1.NameFly)
	}
	for _, l := range []types.ACIdentifier{"version", "os", "arch"} {
		if _, ok := im.Labels.Get(string(l)); !ok {
			t.Errorf("label %s missing", l)
		}
	}
	for ann, want := range map[string]string{
		stage1.AnnRun: "/run", stage1.AnnEnter: "/enter", stage1.AnnStop: "/stop", stage1.AnnGC: "/gc",
		stage1.AnnInterfaceVersion: fmt.Sprint(stage1.InterfaceVersion),
	} {
		if got, _ := im.Annotations.Get(ann); got != want {
			t.Errorf("annotation %s = %q, want %q", ann, got, want)
		}
	}
}
