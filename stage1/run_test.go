package stage1_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/stage1/cgroups"
)

func TestOneAppOutputAndExitCode(t *testing.T) {
	requirePods(t)
	p := newPod(t, []stage1test.App{{Name: "hello", Exec: []string{"/bin/sh", "-c", "echo hello from $AC_APP_NAME in $container; echo to stderr >&2; exit 7"}}})
	r := p.Run("--net=host")
	if r.Code != 7 {
		t.Fatalf("exit code %d, want 7\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// The apps' lines reach rkt's stdout as rkt showed them: journald's
	// console format, with plain newlines.
	if !regexp.MustCompile(`(?m)^\[ *[0-9.]+\] hello\[\d+\]: hello from hello in rkt$`).MatchString(r.Stdout) {
		t.Errorf("stdout lacks the app's line:\n%q", r.Stdout)
	}
	if !strings.Contains(r.Stdout, "hello[") || !strings.Contains(r.Stdout, "to stderr") {
		t.Errorf("stdout lacks the app's stderr line:\n%q", r.Stdout)
	}
	if strings.Contains(r.Stdout, "\r") {
		t.Errorf("stdout has carriage returns: %q", r.Stdout)
	}
	if r.Stderr != "" {
		t.Errorf("stderr not empty: %q", r.Stderr)
	}
	if got := p.Status("hello"); got != "7" {
		t.Errorf("rkt/status/hello = %q, want 7", got)
	}
}

func TestAppEnvironmentAndIdentity(t *testing.T) {
	requirePods(t)
	p := newPod(t, []stage1test.App{{
		Name:    "env",
		Exec:    []string{"sh", "-c", `echo "path=$PATH id=$(id -u):$(id -g) pwd=$(pwd) foo=$FOO"; test -c /dev/null && test -c /dev/urandom && test -d /proc/self && test -d /dev/pts && test -d /dev/shm && test -d /sys/kernel`},
		User:    "user",
		Group:   "users",
		WorkDir: "/home/user",
		Env:     map[string]string{"FOO": "bar"},
	}})
	r := p.Run("--net=host")
	if r.Code != 0 {
		t.Fatalf("exit code %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	want := "path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin id=1000:1001 pwd=/home/user foo=bar"
	if !strings.Contains(r.Stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, r.Stdout)
	}
	env, err := os.ReadFile(pod.AppEnvPath(p.Dir, "env"))
	if err != nil || !strings.Contains(string(env), "AC_APP_NAME=env\n") {
		t.Errorf("rkt/env/env = %q, %v", env, err)
	}
}

func TestMissingExecutableAndWorkdirAreNamed(t *testing.T) {
	requirePods(t)
	for _, tc := range []struct {
		app  stage1test.App
		code int
		msg  string
	}{
		{stage1test.App{Name: "noexec", Exec: []string{"/no/such/program"}}, 203, `executable "/no/such/program": not found in the app's rootfs`},
		{stage1test.App{Name: "nopath", Exec: []string{"nosuchprogram"}}, 203, `executable "nosuchprogram" not found in PATH`},
		{stage1test.App{Name: "nodir", Exec: []string{"/bin/true"}, WorkDir: "/no/dir"}, 200, `working directory "/no/dir": not found`},
	} {
		p := newPod(t, []stage1test.App{tc.app})
		r := p.Run("--net=host")
		if r.Code != tc.code {
			t.Errorf("%s: exit code %d, want %d\n%s", tc.app.Name, r.Code, tc.code, r.Stdout)
		}
		if !strings.Contains(r.Stdout, tc.msg) {
			t.Errorf("%s: output lacks %q:\n%s", tc.app.Name, tc.msg, r.Stdout)
		}
	}
}

func TestTwoAppsShareEmptyVolumeAndHandlers(t *testing.T) {
	requirePods(t)
	// Each app waits for the other's file: they run at the same time and
	// see the same volume.
	a := stage1test.App{
		Name:   "writer",
		Exec:   []string{"sh", "-c", "test -f /data/pre || exit 10; touch /data/from-writer; while ! test -f /data/from-reader; do sleep 0.05; done"},
		Mounts: map[string]string{"shared": "/data"},
		Handlers: map[string][]string{
			"pre-start": {"/bin/touch", "/data/pre"},
			"post-stop": {"/bin/sh", "-c", "touch /data/post-$AC_APP_NAME"},
		},
	}
	b := stage1test.App{
		Name:   "reader",
		Exec:   []string{"sh", "-c", "while ! test -f /data/from-writer; do sleep 0.05; done; touch /data/from-reader"},
		Mounts: map[string]string{"shared": "/data"},
	}
	p := newPod(t, []stage1test.App{a, b}, emptyVolume("shared", "0770"))
	r := p.Run("--net=host")
	if r.Code != 0 {
		t.Fatalf("exit code %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	vol := pod.EmptyVolumePath(p.Dir, "shared")
	for _, f := range []string{"pre", "from-writer", "from-reader", "post-writer"} {
		if _, err := os.Stat(filepath.Join(vol, f)); err != nil {
			t.Errorf("volume lacks %s: %v", f, err)
		}
	}
	if fi, err := os.Stat(vol); err != nil || fi.Mode().Perm() != 0o770 {
		t.Errorf("volume mode %v, %v; want 0770", fi.Mode(), err)
	}
	if p.Status("writer") != "0" || p.Status("reader") != "0" {
		t.Errorf("statuses %q %q, want 0 0", p.Status("writer"), p.Status("reader"))
	}
}

func TestFailingAppEndsThePodWithItsStatus(t *testing.T) {
	requirePods(t)
	p := newPod(t, []stage1test.App{
		{Name: "sleeper", Exec: []string{"sleep", "1000"}},
		{Name: "failer", Exec: []string{"sh", "-c", "sleep 0.2; exit 3"}},
	})
	r := p.Run("--net=host")
	if r.Code != 3 {
		t.Fatalf("exit code %d, want 3\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r.Took > 10*time.Second {
		t.Errorf("pod took %v to end after a failure", r.Took)
	}
	if got := p.Status("failer"); got != "3" {
		t.Errorf("status of failer %q, want 3", got)
	}
	// The other app was stopped by SIGTERM.
	if got := p.Status("sleeper"); got != "143" {
		t.Errorf("status of sleeper %q, want 143", got)
	}
}

func TestSIGTERMStopsGracefullyWithTheAppsStatus(t *testing.T) {
	requirePods(t)
	p := newPod(t, []stage1test.App{{
		Name:     "trapper",
		Exec:     []string{"sh", "-c", `trap "exit 5" TERM; touch /tmp/started; while :; do sleep 0.05; done`},
		Handlers: map[string][]string{"post-stop": {"/bin/touch", "/tmp/post-stop-ran"}},
	}})
	run := p.Start("--net=host")
	root := pod.AppRootfsPath(p.Dir, "trapper")
	stage1test.WaitFile(t, filepath.Join(root, "tmp/started"), 20*time.Second)
	sent := time.Now()
	run.Signal(syscall.SIGTERM)
	r := run.Wait(20 * time.Second)
	if r.Code != 5 {
		t.Fatalf("exit code %d, want 5\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r.Stderr != "" {
		t.Errorf("stderr not empty after SIGTERM: %q", r.Stderr)
	}
	if took := time.Since(sent); took > 5*time.Second {
		t.Errorf("graceful stop took %v", took)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp/post-stop-ran")); err != nil {
		t.Errorf("post-stop handler did not run: %v", err)
	}
	if got := p.Status("trapper"); got != "5" {
		t.Errorf("status %q, want 5", got)
	}
}

// TestStopEntrypoint: a graceful stop of an app that SIGTERM kills gives
// 143 as the pod's status and the app's (the suite's RunningPod checks an
// app that traps SIGTERM, ForcedStop --force).
func TestStopEntrypoint(t *testing.T) {
	requirePods(t)
	p := newPod(t, []stage1test.App{{Name: "sleeper", Exec: []string{"sh", "-c", "touch /tmp/up; exec sleep 1000"}}})
	run := p.Start("--net=host")
	stage1test.WaitFile(t, filepath.Join(pod.AppRootfsPath(p.Dir, "sleeper"), "tmp/up"), 20*time.Second)
	if o, code := p.Entrypoint(stage1.AnnStop, p.UUID); code != 0 {
		t.Fatalf("stop: exit %d: %s", code, o)
	}
	r := run.Wait(20 * time.Second)
	if r.Code != 143 || p.Status("sleeper") != "143" {
		t.Errorf("graceful stop: exit %d, status %q; want 143, 143\n%s", r.Code, p.Status("sleeper"), r.Stdout)
	}
}

func TestEnterRunsInTheApp(t *testing.T) {
	requirePods(t)
	p := newPod(t, []stage1test.App{{Name: "target", Exec: []string{"sh", "-c", "touch /tmp/up; exec sleep 1000"}, Env: map[string]string{"GREETING": "hi"}, User: "user", Group: "users"}})
	run := p.Start("--net=host")
	defer func() {
		p.Entrypoint(stage1.AnnStop, p.UUID)
		run.Wait(20 * time.Second)
	}()
	stage1test.WaitFile(t, filepath.Join(pod.AppRootfsPath(p.Dir, "target"), "tmp/up"), 20*time.Second)
	pid1 := p.PID1(20 * time.Second)
	o, code := p.Entrypoint(stage1.AnnEnter, "--pid="+itoa(pid1), "--appname=target", "--",
		"/bin/sh", "-c", `echo "$GREETING $(id -u) $(hostname) $(cat /proc/1/comm)"; exit 4`)
	if code != 4 {
		t.Fatalf("enter: exit %d, want 4: %s", code, o)
	}
	want := "hi 1000 rkt-" + p.UUID + " systemd"
	if strings.TrimSpace(o) != want {
		t.Errorf("enter printed %q, want %q", o, want)
	}
	// Without bash in the image, the default command falls back to sh.
	o, code = p.Entrypoint(stage1.AnnEnter, "--pid="+itoa(pid1), "--appname=target", "--", "/bin/bash")
	if code != 0 {
		t.Errorf("enter with /bin/bash: exit %d: %s", code, o)
	}
}

func TestJournalReadableAfterExit(t *testing.T) {
	requirePods(t)
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("requires journalctl")
	}
	p := newPod(t, []stage1test.App{{Name: "logger", Exec: []string{"sh", "-c", "echo line-for-the-journal"}}})
	if r := p.Run("--net=host"); r.Code != 0 {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	out, err := exec.Command("journalctl", "-D", pod.JournalPath(p.Dir), "-t", "logger", "-o", "cat", "--no-pager").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "line-for-the-journal") {
		t.Errorf("journalctl -D: %v\n%s", err, out)
	}
}

func TestGCLeavesNothingBehind(t *testing.T) {
	requirePods(t)
	before := mountCount(t)
	p := newPod(t, []stage1test.App{{Name: "short", Exec: []string{"true"}}})
	if r := p.Run("--net=host"); r.Code != 0 {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	b, err := os.ReadFile(filepath.Join(p.Dir, "cgroups"))
	if err != nil {
		t.Fatal(err)
	}
	dirs := strings.Fields(string(b))
	if len(dirs) == 0 {
		t.Fatal("no cgroups recorded")
	}
	scope := cgroups.ScopeName("rkt-" + p.UUID)
	sub, _ := os.ReadFile(filepath.Join(p.Dir, pod.SubcgroupFile))
	if !strings.HasSuffix(string(sub), cgroups.Slice+"/"+scope) {
		t.Errorf("subcgroup %q does not end in %s/%s", sub, cgroups.Slice, scope)
	}
	p.GC()
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s still there after gc (%v)", d, err)
		}
	}
	if _, err := os.Lstat(filepath.Join("/var/log/journal", strings.ReplaceAll(p.UUID, "-", ""))); !os.IsNotExist(err) {
		t.Errorf("journal link still there after gc (%v)", err)
	}
	if after := mountCount(t); after != before {
		t.Errorf("%d mounts before the pod, %d after gc", before, after)
	}
	// gc is idempotent.
	p.GC()
}

// mountCount counts the host's mounts whose line mentions the test's own
// directories (named after the test) or nspawn's runtime directory (which
// the run entrypoint mounts only in its own namespace): other work on the
// machine mounts and unmounts meanwhile.
func mountCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, t.Name()) || strings.Contains(line, "/run/systemd/nspawn") {
			n++
		}
	}
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestNotifyReachesRktsNotifySocket(t *testing.T) {
	requirePods(t)
	bin := filepath.Join(t.TempDir(), "notify")
	build := exec.Command("go", "build", "-o", bin, "./testdata/notify")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the notify app: %v\n%s", err, out)
	}
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := newPod(t, []stage1test.App{{
		Name:        "ready",
		Exec:        []string{"/bin/notify"},
		Files:       map[string]string{"/bin/notify": bin},
		Annotations: map[string]string{"appc.io/executor/supports-systemd-notify": "true"},
	}})
	p.Env = []string{"NOTIFY_SOCKET=" + sock}
	run := p.Start("--net=host")
	started := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no READY=1 on rkt's NOTIFY_SOCKET: %v\n%s%s", err, run.Stdout, run.Stderr)
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			break
		}
	}
	// READY=1 must come from the app, not from nspawn's start.
	if !strings.Contains(run.Stdout.String(), "sent READY=1") {
		time.Sleep(200 * time.Millisecond)
		if !strings.Contains(run.Stdout.String(), "sent READY=1") {
			t.Errorf("READY=1 arrived %v after start, before the app sent it:\n%s", time.Since(started), run.Stdout)
		}
	}
	p.Entrypoint(stage1.AnnStop, p.UUID)
	if r := run.Wait(20 * time.Second); r.Code != 0 {
		t.Errorf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestManyPodsLeaveNothingBehind runs pods one after another and checks
// that mounts, the pods' cgroup directories and the pods directory are back
// to where they started once each is gc'ed. (Only this test's cgroups are
// counted: other pods may run on the machine meanwhile.)
func TestManyPodsLeaveNothingBehind(t *testing.T) {
	requirePods(t)
	n := 100
	if testing.Short() {
		n = 10
	}
	mounts := mountCount(t)
	for i := 0; i < n; i++ {
		p := newPod(t, []stage1test.App{{Name: "short", Exec: []string{"true"}}})
		if r := p.Run("--net=host"); r.Code != 0 {
			t.Fatalf("pod %d: exit %d\n%s%s", i, r.Code, r.Stdout, r.Stderr)
		}
		b, err := os.ReadFile(filepath.Join(p.Dir, "cgroups"))
		if err != nil {
			t.Fatal(err)
		}
		p.GC()
		for _, d := range strings.Fields(string(b)) {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Fatalf("pod %d: cgroup %s left behind", i, d)
			}
		}
		if err := os.RemoveAll(filepath.Dir(filepath.Dir(filepath.Dir(p.Dir)))); err != nil {
			t.Fatalf("pod %d: removing the pods directory: %v", i, err)
		}
	}
	if got := mountCount(t); got != mounts {
		t.Errorf("%d mounts before, %d after %d pods", mounts, got, n)
	}
}

// A stop as soon as the pod has a ppid file (nspawn may not have started
// the pod's systemd yet) still ends the pod.
func TestStopRightAfterStart(t *testing.T) {
	requirePods(t)
	for i := 0; i < 2; i++ {
		p := newPod(t, []stage1test.App{{Name: "sleeper", Exec: []string{"sleep", "1000"}}})
		run := p.Start("--net=host")
		stage1test.WaitFile(t, filepath.Join(p.Dir, pod.PPIDFile), 20*time.Second)
		if o, code := p.Entrypoint(stage1.AnnStop, p.UUID); code != 0 {
			t.Fatalf("stop: exit %d: %s", code, o)
		}
		run.Wait(20 * time.Second)
	}
}
