package stage1test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
)

// App is one app of a test pod: its image manifest's app and its rootfs.
type App struct {
	Name    string
	Exec    []string
	User    string // default "0"
	Group   string // default "0"
	WorkDir string
	Env     map[string]string
	// Handlers by event name (pre-start, post-stop).
	Handlers map[string][]string
	// Mounts maps volume names to paths in the app.
	Mounts map[string]string
	// Annotations of the image.
	Annotations map[string]string

	// Busybox puts the host's static busybox at /bin/busybox with its
	// common applets (sh, sleep, cat...) linked to it.
	Busybox bool
	// Files are copied into the rootfs, executable: path in the app ->
	// host path.
	Files map[string]string
	// Text files of the rootfs: path in the app -> content. /etc/passwd
	// and /etc/group default to Passwd and Group.
	Text map[string]string
}

// The users of a test app's rootfs unless App.Text says otherwise.
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1001:user:/home/user:/bin/sh\n"
	Group  = "root:x:0:\nusers:x:1001:\n"
)

var applets = []string{"sh", "echo", "sleep", "cat", "ls", "true", "false", "touch", "test", "id", "pwd", "env", "grep", "kill", "hostname"}

// RequireBusybox skips t unless the host has a busybox to put in apps
// (apt-get install busybox-static: a static one, apps have no libc).
func RequireBusybox(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("requires busybox for the test apps (apt-get install busybox-static)")
	}
	return p
}

// Pod is a pod directory laid out as stage0 leaves it before exec'ing the
// run entrypoint: the stage1 image copied in, each app's rootfs and image
// manifest, and the pod manifest. Manifest and Images may be changed until
// Start writes them.
type Pod struct {
	T    testing.TB
	UUID string
	Dir  string
	// Manifest is the pod manifest; each app's App is a copy of its
	// image's, as stage0 writes it.
	Manifest *schema.PodManifest
	// Images are the apps' image manifests, by app name.
	Images map[string]*schema.ImageManifest
	// Env is the run entrypoint's environment besides PATH, HOME and
	// RKT_LOCK_FD.
	Env []string
}

var uuidSeq atomic.Uint64

func init() { uuidSeq.Store(uint64(time.Now().UnixNano())) }

// NewUUID returns a UUID unique on this machine for a while: pods of
// concurrent test binaries must not share cgroup or machine names.
func NewUUID() string {
	n := uuidSeq.Add(1)
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(n>>16), uint16(n), uint16(os.Getpid())&0xfff, uint16(n>>8)&0xfff, n&0xffffffffffff)
}

// NewPod builds a pod of apps for the stage1 image directory image
// (manifest + rootfs/) under t's temporary directory, and gc's it when t
// ends.
func NewPod(t testing.TB, image string, apps []App, volumes ...types.Volume) *Pod {
	t.Helper()
	p := &Pod{T: t, UUID: NewUUID(), Images: map[string]*schema.ImageManifest{}}
	p.Dir = filepath.Join(t.TempDir(), "pods", "run", p.UUID)
	rootfs := pod.Stage1RootfsPath(p.Dir)
	p.must(os.MkdirAll(filepath.Dir(rootfs), 0o755))
	if b, err := exec.Command("cp", "-a", filepath.Join(image, "rootfs"), rootfs).CombinedOutput(); err != nil {
		t.Fatalf("copying the stage1 rootfs: %v: %s", err, b)
	}
	p.copyFile(filepath.Join(image, "manifest"), pod.Stage1ManifestPath(p.Dir), 0o644)
	p.Manifest = schema.BlankPodManifest()
	p.Manifest.Volumes = append([]types.Volume{}, volumes...)
	for _, a := range apps {
		p.addApp(a)
	}
	t.Cleanup(p.GC)
	return p
}

func (p *Pod) addApp(a App) {
	p.T.Helper()
	root := pod.AppRootfsPath(p.Dir, a.Name)
	for _, d := range []string{"bin", "etc", "tmp", "home/user"} {
		p.must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	p.must(os.Chmod(filepath.Join(root, "tmp"), 0o1777))
	if a.Busybox {
		p.copyFile(RequireBusybox(p.T), filepath.Join(root, "bin/busybox"), 0o755)
		for _, c := range applets {
			p.must(os.Symlink("busybox", filepath.Join(root, "bin", c)))
		}
	}
	for in, src := range a.Files {
		p.copyFile(src, filepath.Join(root, in), 0o755)
	}
	text := map[string]string{"/etc/passwd": Passwd, "/etc/group": Group}
	for k, v := range a.Text {
		text[k] = v
	}
	for in, content := range text {
		p.must(os.MkdirAll(filepath.Dir(filepath.Join(root, in)), 0o755))
		p.must(os.WriteFile(filepath.Join(root, in), []byte(content), 0o644))
	}

	app := &types.App{Exec: a.Exec, User: or(a.User, "0"), Group: or(a.Group, "0"), WorkingDirectory: a.WorkDir}
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		app.Environment.Set(k, a.Env[k])
	}
	for _, ev := range slices.Sorted(maps.Keys(a.Handlers)) {
		app.EventHandlers = append(app.EventHandlers, types.EventHandler{Name: ev, Exec: a.Handlers[ev]})
	}
	name := "example.com/test-" + a.Name
	im := &schema.ImageManifest{ACKind: schema.ImageManifestKind, ACVersion: schema.AppContainerVersion,
		Name: types.ACIdentifier(name), App: app}
	for _, k := range slices.Sorted(maps.Keys(a.Annotations)) {
		im.Annotations.Set(types.ACIdentifier(k), a.Annotations[k])
	}
	p.Images[a.Name] = im
	ra := schema.RuntimeApp{Name: types.ACName(a.Name), Image: schema.RuntimeImage{
		Name: types.MustACIdentifier(name), ID: *types.NewHashSHA512([]byte(a.Name))}}
	copied := *app
	ra.App = &copied
	for _, vol := range slices.Sorted(maps.Keys(a.Mounts)) {
		ra.Mounts = append(ra.Mounts, schema.Mount{Volume: types.ACName(vol), Path: a.Mounts[vol]})
	}
	p.Manifest.Apps = append(p.Manifest.Apps, ra)
}

// App is the pod manifest's app of name (the first app for "").
func (p *Pod) App(name string) *types.App {
	return p.RuntimeApp(name).App
}

// RuntimeApp is the pod manifest's entry for app name (the first for "").
func (p *Pod) RuntimeApp(name string) *schema.RuntimeApp {
	for i := range p.Manifest.Apps {
		if name == "" || string(p.Manifest.Apps[i].Name) == name {
			return &p.Manifest.Apps[i]
		}
	}
	p.T.Fatalf("pod has no app %q", name)
	return nil
}

// Rootfs is app's rootfs directory.
func (p *Pod) Rootfs(app string) string { return pod.AppRootfsPath(p.Dir, app) }

// WriteManifests writes the pod manifest and the apps' image manifests
// where stage0 puts them (appsinfo/ and the stage2 copies).
func (p *Pod) WriteManifests() {
	p.T.Helper()
	b, err := p.Manifest.MarshalJSON()
	p.must(err)
	p.must(os.WriteFile(filepath.Join(p.Dir, pod.ManifestFile), b, 0o644))
	for app, im := range p.Images {
		b, err := im.MarshalJSON()
		p.must(err)
		p.must(os.MkdirAll(pod.AppsInfoPath(p.Dir, app), 0o755))
		p.must(os.WriteFile(pod.AppImageManifestPath(p.Dir, app), b, 0o644))
		p.must(os.WriteFile(pod.AppTreeStoreIDPath(p.Dir, app), []byte("deps-sha512-test"), 0o644))
		p.must(os.WriteFile(filepath.Join(pod.AppPath(p.Dir, app), "manifest"), b, 0o644))
	}
}

// Command prepares an entrypoint of the image (its path relative to the
// stage1 rootfs: "init", "run", "enter"...) run as stage0 runs it: in the
// pod directory, with a minimal environment.
func (p *Pod) Command(entry string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pod.Stage1RootfsPath(p.Dir), entry), args...)
	cmd.Dir = p.Dir
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}, p.Env...)
	// A process left holding an output pipe must not hang the test.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Entrypoint runs the entrypoint named by annotation ann of the image
// (stage1.AnnStop...) to its end and returns its combined output and
// exit status.
func (p *Pod) Entrypoint(ann string, args ...string) (string, int) {
	p.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := p.Command(p.EntryPath(ann), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		p.T.Fatalf("%s: %v", ann, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), exitCode(p.T, err)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		p.T.Fatalf("%s %q did not end within a minute: %s", ann, args, out.String())
		return "", 0
	}
}

// EntryPath is the path in the stage1 rootfs (relative) that annotation
// ann of the image names; the test fails when the image lacks it.
func (p *Pod) EntryPath(ann string) string {
	p.T.Helper()
	m := p.Stage1Manifest()
	v, ok := m.Annotations.Get(ann)
	if !ok {
		p.T.Fatalf("the stage1 image has no %s annotation", ann)
	}
	return strings.TrimPrefix(v, "/")
}

// Stage1Manifest is the image manifest of the pod's stage1.
func (p *Pod) Stage1Manifest() *schema.ImageManifest {
	p.T.Helper()
	b, err := os.ReadFile(pod.Stage1ManifestPath(p.Dir))
	p.must(err)
	var m schema.ImageManifest
	p.must(m.UnmarshalJSON(b))
	return &m
}

// Running is a run entrypoint started by Start.
type Running struct {
	p      *Pod
	Cmd    *exec.Cmd
	Stdout *Buffer
	Stderr *Buffer
	start  time.Time
	done   chan struct{}
	err    error
}

// Result is what a finished run entrypoint left.
type Result struct {
	Code   int // 128+N when killed by signal N
	Stdout string
	Stderr string
	Took   time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("exit status %d after %v\nstdout:\n%s\nstderr:\n%s", r.Code, r.Took.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// Start writes the manifests and starts the run entrypoint with args and
// the pod's UUID, holding the pod's lock as stage0 hands it over: fd 3,
// named by RKT_LOCK_FD.
func (p *Pod) Start(args ...string) *Running {
	p.T.Helper()
	p.WriteManifests()
	lock, err := os.Open(p.Dir)
	p.must(err)
	defer lock.Close() // the child holds the lock from now on
	p.must(syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	cmd := p.Command(p.EntryPath(stage1.AnnRun), append(args, p.UUID)...)
	cmd.ExtraFiles = []*os.File{lock}
	cmd.Env = append(cmd.Env, stage1.EnvLockFD+"=3")
	r := &Running{p: p, Cmd: cmd, Stdout: &Buffer{}, Stderr: &Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.Stdout, r.Stderr
	r.start = time.Now()
	if err := cmd.Start(); err != nil {
		p.T.Fatalf("starting the run entrypoint: %v", err)
	}
	go func() { r.err = cmd.Wait(); close(r.done) }()
	p.T.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// Wait waits up to timeout for the run entrypoint to end; past it, the test
// fails.
func (r *Running) Wait(timeout time.Duration) Result {
	r.p.T.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		_ = r.Cmd.Process.Kill()
		<-r.done
		r.p.T.Fatalf("the pod did not end within %v\nstdout:\n%s\nstderr:\n%s", timeout, r.Stdout, r.Stderr)
	}
	return Result{Code: exitCode(r.p.T, r.err), Stdout: r.Stdout.String(), Stderr: r.Stderr.String(), Took: time.Since(r.start)}
}

// Signal sends sig to the run entrypoint's process.
func (r *Running) Signal(sig syscall.Signal) {
	r.p.T.Helper()
	r.p.must(r.Cmd.Process.Signal(sig))
}

// WaitOutput waits up to timeout for s on the pod's stdout.
func (r *Running) WaitOutput(s string, timeout time.Duration) {
	r.p.T.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(r.Stdout.String(), s) {
		select {
		case <-r.done:
			r.p.T.Fatalf("the pod ended before printing %q\nstdout:\n%s\nstderr:\n%s", s, r.Stdout, r.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			r.p.T.Fatalf("%q not printed within %v\nstdout:\n%s\nstderr:\n%s", s, timeout, r.Stdout, r.Stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Run runs the pod to its end (a minute at most).
func (p *Pod) Run(args ...string) Result {
	p.T.Helper()
	return p.Start(args...).Wait(time.Minute)
}

// Status is rkt/status/<app>, or "" when absent.
func (p *Pod) Status(app string) string {
	b, err := os.ReadFile(pod.AppStatusPath(p.Dir, app))
	if err != nil {
		return ""
	}
	return string(b)
}

// Locked reports whether someone holds the pod's lock.
func (p *Pod) Locked() bool {
	p.T.Helper()
	f, err := os.Open(p.Dir)
	p.must(err)
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil
}

// PID1 waits up to timeout for the pid enter joins: the pid file, or the
// only child of the process the ppid file names.
func (p *Pod) PID1(timeout time.Duration) int {
	p.T.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if pid := p.pid1(); pid > 0 {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.T.Fatalf("neither %s nor %s named the pod's PID 1 within %v", pod.PIDFile, pod.PPIDFile, timeout)
	return 0
}

func (p *Pod) pid1() int {
	var pid int
	if b, err := os.ReadFile(filepath.Join(p.Dir, pod.PIDFile)); err == nil {
		if _, err := fmt.Sscan(string(b), &pid); err == nil {
			return pid
		}
	}
	b, err := os.ReadFile(filepath.Join(p.Dir, pod.PPIDFile))
	if err != nil {
		return 0
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%s/task/*/children", strings.TrimSpace(string(b))))
	for _, task := range tasks {
		c, _ := os.ReadFile(task)
		if _, err := fmt.Sscan(string(c), &pid); err == nil && pid > 0 {
			return pid
		}
	}
	return 0
}

// GC runs the gc entrypoint (when the image has one and the pod directory
// is still there) and fails the test when it fails.
func (p *Pod) GC() {
	p.T.Helper()
	if _, err := os.Stat(p.Dir); err != nil {
		return
	}
	if _, ok := p.Stage1Manifest().Annotations.Get(stage1.AnnGC); !ok {
		return
	}
	if out, code := p.Entrypoint(stage1.AnnGC, p.UUID); code != 0 {
		p.T.Errorf("gc: exit status %d: %s", code, out)
	}
}

// WaitFile waits up to timeout for path to exist.
func WaitFile(t testing.TB, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within %v", path, timeout)
}

// exitCode is the status of a finished command, 128+N for signal N.
func exitCode(t testing.TB, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func (p *Pod) must(err error) {
	p.T.Helper()
	if err != nil {
		p.T.Fatal(err)
	}
}

func (p *Pod) copyFile(src, dst string, mode os.FileMode) {
	p.T.Helper()
	b, err := os.ReadFile(src)
	p.must(err)
	p.must(os.MkdirAll(filepath.Dir(dst), 0o755))
	p.must(os.WriteFile(dst, b, mode))
	p.must(os.Chmod(dst, mode))
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Buffer is a bytes.Buffer safe for a process writing while a test reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
