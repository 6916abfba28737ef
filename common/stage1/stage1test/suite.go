package stage1test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
)

// Suite checks the stage1 image directory image (manifest + rootfs/, as the
// stage1 packer writes it) against the contract, as subtests of t: what
// every stage1 must do, and what caps promise. It runs pods, so the caller
// skips first when the machine cannot run them (root, the stage1's tools);
// the test apps are busybox's.
func Suite(t *testing.T, image string, caps Caps) {
	RequireBusybox(t)
	s := &suite{image: image, caps: caps}
	t.Run("Manifest", s.manifest)
	t.Run("ExitStatus", s.exitStatus)
	t.Run("RunningPod", s.runningPod)
	t.Run("ForcedStop", s.forcedStop)
	t.Run("GCIdempotent", s.gcIdempotent)
	t.Run("BadArguments", s.badArguments)
	t.Run("RunArgsOfEachVersion", s.runArgs)
	if caps.Has(Networks) {
		t.Run("NetworkNone", s.networkNone)
	}
}

type suite struct {
	image string
	caps  Caps
}

// Waits bound hangs under load; they never time a result.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 45 * time.Second
)

// app is a busybox app running script. Apps that say they are up touch
// /up: /tmp may be a mount of the app's own (fly's tmpfs).
func (s *suite) app(name string, script string) App {
	return App{Name: name, Exec: []string{"/bin/sh", "-c", script}, Busybox: true}
}

// manifest: the entrypoints the annotations name exist, the interface
// version is one stage0 speaks, the capabilities match the annotations,
// and rkt/status is there (rkt 1.30's stage0 touches it).
func (s *suite) manifest(t *testing.T) {
	p := NewPod(t, s.image, nil)
	m := p.Stage1Manifest()
	if m.Name == "" {
		t.Error("the image has no name")
	}
	rootfs := pod.Stage1RootfsPath(p.Dir)
	for _, ann := range []string{stage1.AnnRun, stage1.AnnStop, stage1.AnnGC, stage1.AnnEnter} {
		v, ok := m.Annotations.Get(ann)
		if !ok {
			if ann != stage1.AnnEnter {
				t.Errorf("annotation %s missing", ann)
			}
			continue
		}
		if !strings.HasPrefix(v, "/") {
			t.Errorf("annotation %s = %q: not an absolute path", ann, v)
		}
		if fi, err := os.Stat(filepath.Join(rootfs, v)); err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("annotation %s = %q: not an executable in the rootfs (%v)", ann, v, err)
		}
	}
	if _, ok := m.Annotations.Get(stage1.AnnEnter); ok != s.caps.Has(Enter) {
		t.Errorf("enter annotation present %v, but the Enter capability is %v", ok, s.caps.Has(Enter))
	}
	if v := Version(t, p); v < stage1.MinInterfaceVersion || v > stage1.InterfaceVersion {
		t.Errorf("interface version %d: stage0 speaks %d to %d", v, stage1.MinInterfaceVersion, stage1.InterfaceVersion)
	}
	if fi, err := os.Stat(pod.StatusDir(p.Dir)); err != nil || !fi.IsDir() {
		t.Errorf("the rootfs lacks the directory rkt/status: %v", err)
	}
}

// Version is the interface version the pod's stage1 declares (1 when it
// declares none).
func Version(t testing.TB, p *Pod) int {
	t.Helper()
	v, ok := p.Stage1Manifest().Annotations.Get(stage1.AnnInterfaceVersion)
	if !ok {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("interface version %q: %v", v, err)
	}
	return n
}

// exitStatus: the pod's status is its app's, the lock is released when it
// ends, and rkt/status/<app> holds the status where the stage1 records it.
func (s *suite) exitStatus(t *testing.T) {
	p := NewPod(t, s.image, []App{s.app("seven", "echo line-from-the-app; exit 7")})
	r := p.Run("--net=host")
	if r.Code != 7 || !strings.Contains(r.Stdout, "line-from-the-app") {
		t.Fatalf("want exit status 7 and the app's line on stdout: %v", r)
	}
	if p.Locked() {
		t.Error("the pod is still locked after run ended")
	}
	if got := p.Status("seven"); s.caps.Has(RecordsAppStatus) && got != "7" {
		t.Errorf("rkt/status/seven = %q, want 7", got)
	}
	if !s.caps.Has(MultiApp) {
		return
	}
	p = NewPod(t, s.image, []App{s.app("sleeper", "exec sleep 1000"), s.app("failer", "sleep 0.2; exit 3")})
	if r := p.Run("--net=host"); r.Code != 3 {
		t.Fatalf("a pod whose app failed with 3: %v", r)
	}
	if got := p.Status("failer"); s.caps.Has(RecordsAppStatus) && got != "3" {
		t.Errorf("rkt/status/failer = %q, want 3", got)
	}
}

// runningPod: while the app runs, the pod is locked and pid or ppid names
// its PID 1; enter runs a command there and passes its status on; a
// graceful stop ends the app with SIGTERM, whose handler's status is the
// pod's.
func (s *suite) runningPod(t *testing.T) {
	p := NewPod(t, s.image, []App{s.app("trapper", `trap "exit 5" TERM; touch /up; while :; do sleep 0.05; done`)})
	run := p.Start("--net=host")
	WaitFile(t, filepath.Join(p.Rootfs("trapper"), "up"), startTimeout)
	if !p.Locked() {
		t.Error("the pod is not locked while its app runs")
	}
	pid := p.PID1(startTimeout)
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		t.Errorf("the pod's PID 1 %d is not running: %v", pid, err)
	}
	if s.caps.Has(Enter) {
		ea := stage1.EnterArgs{PID: pid, AppName: "trapper", Cmd: []string{"/bin/sh", "-c", "echo entered; exit 4"}}
		if out, code := p.Entrypoint(stage1.AnnEnter, ea.Args()...); code != 4 || !strings.Contains(out, "entered") {
			t.Errorf("enter: exit status %d, want 4; output %q", code, out)
		}
		if s.caps.Has(BootsSystemd) {
			ea.Cmd = []string{"/bin/cat", "/proc/1/comm"}
			if out, code := p.Entrypoint(stage1.AnnEnter, ea.Args()...); code != 0 || strings.TrimSpace(out) != "systemd" {
				t.Errorf("the pod's PID 1 seen by enter: %q (exit status %d), want systemd", out, code)
			}
		}
	}
	if out, code := p.Entrypoint(stage1.AnnStop, p.UUID); code != 0 {
		t.Fatalf("stop: exit status %d: %s", code, out)
	}
	r := run.Wait(stopTimeout)
	if r.Code != 5 {
		t.Errorf("after a graceful stop: want the app's status 5: %v", r)
	}
	if got := p.Status("trapper"); s.caps.Has(RecordsAppStatus) && got != "5" {
		t.Errorf("rkt/status/trapper = %q, want 5", got)
	}
	if p.Locked() {
		t.Error("the pod is still locked after it ended")
	}
	// Stopping an ended pod is not an error.
	if out, code := p.Entrypoint(stage1.AnnStop, p.UUID); code != 0 {
		t.Errorf("stop of an ended pod: exit status %d: %s", code, out)
	}
}

// forcedStop: stop --force ends a pod whose app ignores nothing, with a
// failure status.
func (s *suite) forcedStop(t *testing.T) {
	p := NewPod(t, s.image, []App{s.app("sleeper", "touch /up; exec sleep 1000")})
	run := p.Start("--net=host")
	WaitFile(t, filepath.Join(p.Rootfs("sleeper"), "up"), startTimeout)
	sa := stage1.StopArgs{Force: true, UUID: p.UUID}
	if out, code := p.Entrypoint(stage1.AnnStop, sa.Args()...); code != 0 {
		t.Fatalf("stop --force: exit status %d: %s", code, out)
	}
	if r := run.Wait(stopTimeout); r.Code == 0 {
		t.Errorf("after stop --force: want a failure status: %v", r)
	}
	if p.Locked() {
		t.Error("the pod is still locked after it was killed")
	}
}

// gcIdempotent: gc after the pod ended succeeds, and again.
func (s *suite) gcIdempotent(t *testing.T) {
	p := NewPod(t, s.image, []App{s.app("short", "true")})
	if r := p.Run("--net=host"); r.Code != 0 {
		t.Fatalf("run: %v", r)
	}
	ga := stage1.GCArgs{UUID: p.UUID}
	for i := 0; i < 2; i++ {
		if out, code := p.Entrypoint(stage1.AnnGC, ga.Args(Version(t, p))...); code != 0 {
			t.Errorf("gc #%d: exit status %d: %s", i+1, code, out)
		}
	}
}

// badArguments: each entrypoint refuses bad arguments with 254 and one
// line.
func (s *suite) badArguments(t *testing.T) {
	p := NewPod(t, s.image, []App{s.app("never", "true")})
	p.WriteManifests()
	cases := []struct {
		ann  string
		args []string
	}{
		{stage1.AnnRun, nil},
		{stage1.AnnRun, []string{"--no-such-flag", p.UUID}},
		{stage1.AnnStop, nil},
		{stage1.AnnStop, []string{"--no-such-flag", p.UUID}},
		{stage1.AnnGC, nil},
		{stage1.AnnGC, []string{p.UUID, "extra"}},
	}
	if s.caps.Has(Enter) {
		cases = append(cases, struct {
			ann  string
			args []string
		}{stage1.AnnEnter, []string{"--", "/bin/true"}})
	}
	for _, c := range cases {
		out, code := p.Entrypoint(c.ann, c.args...)
		if code != stage1.ExitFailure || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
			t.Errorf("%s %q: exit status %d and %q; want %d and one line", c.ann, c.args, code, out, stage1.ExitFailure)
		}
	}
}

// runArgs: the run entrypoint accepts what stage0 passes for every
// interface version up to the one it declares (RunArgs.Args).
func (s *suite) runArgs(t *testing.T) {
	p := NewPod(t, s.image, nil)
	declared := Version(t, p)
	for v := stage1.MinInterfaceVersion; v <= declared; v++ {
		p := NewPod(t, s.image, []App{s.app("short", "echo ran")})
		ra := stage1.RunArgs{
			Net: []string{"host"}, Hostname: "conform",
			DisableCaps: true, DisablePaths: true, DisableSeccomp: true,
			DNSConfMode: stage1.DNSConfMode{Resolv: "none", Hosts: "none"},
		}
		args := ra.Args(v)
		if r := p.Run(args[:len(args)-1]...); r.Code != 0 || !strings.Contains(r.Stdout, "ran") {
			t.Errorf("version %d, %q: %v", v, args, r)
		}
	}
}

// networkNone: --net=none gives the pod a network namespace of its own
// with loopback only.
func (s *suite) networkNone(t *testing.T) {
	p := NewPod(t, s.image, []App{s.app("net", `while read -r l; do case $l in *:*) echo "iface=${l%%:*}";; esac; done </proc/net/dev`)})
	r := p.Run("--net=none")
	if r.Code != 0 || !strings.Contains(r.Stdout, "iface=lo") || strings.Count(r.Stdout, "iface=") != 1 {
		t.Errorf("--net=none: want loopback alone: %v", r)
	}
}
