package stage1_test

// Helpers for the functional tests: they build the stage1-host image once
// (the Go binaries and mkrootfs.sh, as build.sh does), lay out pod
// directories by hand as stage0 would, and run the image's entrypoints.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
)

var (
	imageOnce sync.Once
	imageDir  string
	imageErr  error
)

// requirePods skips unless the machine can run pods: root, nspawn and a
// static busybox for the test apps (build.sh test installs both).
func requirePods(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("requires root (pods need namespaces, cgroups and mounts)")
	}
	for _, bin := range []string{"systemd-nspawn", "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("requires %s (apt-get install systemd-container busybox-static)", bin)
		}
	}
}

// stage1Image builds the image directory (manifest + rootfs) once per test
// binary.
func stage1Image(t *testing.T) string {
	t.Helper()
	imageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stage1-image-")
		if err != nil {
			imageErr = err
			return
		}
		imageDir = dir
		bin := filepath.Join(dir, "bin")
		for pkg, out := range map[string]string{
			"./host":               "stage1-host",
			"../stage2/cmd/stage2": "stage2",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(bin, out), pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				imageErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
		if b, err := exec.Command("bash", "mkrootfs.sh", filepath.Join(dir, "image"), bin).CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("mkrootfs.sh: %v\n%s", err, b)
		}
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return filepath.Join(imageDir, "image")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if imageDir != "" {
		os.RemoveAll(imageDir)
	}
	os.Exit(code)
}

// testApp is one app of a test pod: a busybox rootfs running Exec.
type testApp struct {
	Name    string
	Exec    []string
	User    string
	Group   string
	WorkDir string
	Env     map[string]string
	// Handlers by event name (pre-start, post-stop).
	Handlers map[string][]string
	// Mounts maps volume names to paths in the app.
	Mounts map[string]string
	// Annotations of the image.
	Annotations map[string]string
	// Files to copy into the rootfs: path in the app -> host path.
	Files map[string]string
}

// testPod is a pod directory laid out as stage0 leaves it before exec'ing
// the run entrypoint.
type testPod struct {
	t    *testing.T
	UUID string
	Dir  string
	// Env is added to the run entrypoint's environment.
	Env []string
}

var uuidSeq = time.Now().UnixNano()

func newUUID() string {
	uuidSeq++
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(uuidSeq>>16), uint16(uuidSeq), uint16(os.Getpid())&0xfff, uint16(uuidSeq>>8)&0xfff, uuidSeq&0xffffffffffff)
}

// volumes are pod-level volumes as JSON objects (appc types.Volume).
func newPod(t *testing.T, apps []testApp, volumes ...map[string]any) *testPod {
	t.Helper()
	img := stage1Image(t)
	p := &testPod{t: t, UUID: newUUID()}
	p.Dir = filepath.Join(t.TempDir(), "pods", "run", p.UUID)
	rootfs := pod.Stage1RootfsPath(p.Dir)
	if err := os.MkdirAll(filepath.Dir(rootfs), 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("cp", "-a", filepath.Join(img, "rootfs"), rootfs).CombinedOutput(); err != nil {
		t.Fatalf("copying stage1 rootfs: %v: %s", err, b)
	}
	copyFile(t, filepath.Join(img, "manifest"), pod.Stage1ManifestPath(p.Dir))
	busybox, _ := exec.LookPath("busybox")
	var ras []map[string]any
	for _, a := range apps {
		root := pod.AppRootfsPath(p.Dir, a.Name)
		for _, d := range []string{"bin", "etc", "tmp", "home/user"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
			t.Fatal(err)
		}
		copyFile(t, busybox, filepath.Join(root, "bin/busybox"))
		if err := os.Chmod(filepath.Join(root, "bin/busybox"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"sh", "echo", "sleep", "cat", "ls", "true", "false", "touch", "test", "id", "pwd", "env", "grep", "kill", "hostname"} {
			if err := os.Symlink("busybox", filepath.Join(root, "bin", c)); err != nil {
				t.Fatal(err)
			}
		}
		for in, src := range a.Files {
			copyFile(t, src, filepath.Join(root, in))
			if err := os.Chmod(filepath.Join(root, in), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1001:user:/home/user:/bin/sh\n")
		writeFile(t, filepath.Join(root, "etc/group"), "root:x:0:\nusers:x:1001:\n")
		app := map[string]any{"exec": a.Exec, "user": or(a.User, "0"), "group": or(a.Group, "0")}
		if a.WorkDir != "" {
			app["workingDirectory"] = a.WorkDir
		}
		var env []map[string]string
		for k, v := range a.Env {
			env = append(env, map[string]string{"name": k, "value": v})
		}
		app["environment"] = env
		var hs []map[string]any
		for ev, ex := range a.Handlers {
			hs = append(hs, map[string]any{"name": ev, "exec": ex})
		}
		if hs != nil {
			app["eventHandlers"] = hs
		}
		var anns []map[string]string
		for k, v := range a.Annotations {
			anns = append(anns, map[string]string{"name": k, "value": v})
		}
		im := map[string]any{
			"acKind": "ImageManifest", "acVersion": "0.8.11",
			"name": "example.com/test-" + a.Name, "app": app,
		}
		if anns != nil {
			im["annotations"] = anns
		}
		writeJSON(t, pod.AppImageManifestPath(p.Dir, a.Name), im)
		writeFile(t, pod.AppTreeStoreIDPath(p.Dir, a.Name), "deps-sha512-test")
		var mounts []map[string]string
		for vol, path := range a.Mounts {
			mounts = append(mounts, map[string]string{"volume": vol, "path": path})
		}
		ras = append(ras, map[string]any{
			"name":   a.Name,
			"image":  map[string]any{"name": "example.com/test-" + a.Name, "id": "sha512-" + strings.Repeat("0", 64)},
			"mounts": mounts,
		})
	}
	if volumes == nil {
		volumes = []map[string]any{}
	}
	writeJSON(t, filepath.Join(p.Dir, pod.ManifestFile), map[string]any{
		"acKind": "PodManifest", "acVersion": "0.8.11", "apps": ras, "volumes": volumes,
	})
	t.Cleanup(func() { p.gc() })
	return p
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// runResult is what a finished run entrypoint left.
type runResult struct {
	Code   int
	Stdout string
	Stderr string
	Took   time.Duration
}

// start runs the run entrypoint in the background.
func (p *testPod) start(args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	p.t.Helper()
	args = append(args, p.UUID)
	cmd := exec.Command(filepath.Join(pod.Stage1RootfsPath(p.Dir), "init"), args...)
	cmd.Dir = p.Dir
	// The pod's lock, as stage0 hands it over: held by the run entrypoint
	// (and then nspawn) while the pod runs.
	lock, err := os.Open(p.Dir)
	if err != nil {
		p.t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		p.t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{lock}
	cmd.Env = append(append(os.Environ(), p.Env...), stage1.EnvLockFD+"=3")
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting pod: %v", err)
	}
	return cmd, &out, &errb
}

func wait(t *testing.T, cmd *exec.Cmd, out, errb *bytes.Buffer, timeout time.Duration) runResult {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("pod did not end within %v\nstdout:\n%s\nstderr:\n%s", timeout, out, errb)
	}
	return runResult{Code: cmd.ProcessState.ExitCode(), Stdout: out.String(), Stderr: errb.String(), Took: time.Since(start)}
}

// run runs the pod to its end.
func (p *testPod) run(args ...string) runResult {
	p.t.Helper()
	cmd, out, errb := p.start(args...)
	return wait(p.t, cmd, out, errb, 60*time.Second)
}

// status is rkt/status/<app>, or "" when absent.
func (p *testPod) status(app string) string {
	b, err := os.ReadFile(pod.AppStatusPath(p.Dir, app))
	if err != nil {
		return ""
	}
	return string(b)
}

// entrypoint runs another entrypoint of the image in the pod directory.
func (p *testPod) entrypoint(name string, args ...string) (string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(pod.Stage1RootfsPath(p.Dir), name), args...)
	cmd.Dir = p.Dir
	// A process left holding the output pipe must not hang the test.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			p.t.Fatalf("%s: %v", name, err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func (p *testPod) gc() {
	if _, err := os.Stat(p.Dir); err != nil {
		return
	}
	if out, code := p.entrypoint("gc", p.UUID); code != 0 {
		p.t.Errorf("gc: exit %d: %s", code, out)
	}
}

// podPID1 waits for the pod's PID 1 (nspawn's only child) to exist.
func (p *testPod) podPID1(ctx context.Context) int {
	p.t.Helper()
	for ctx.Err() == nil {
		b, err := os.ReadFile(filepath.Join(p.Dir, pod.PPIDFile))
		if err == nil {
			tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%s/task/*/children", strings.TrimSpace(string(b))))
			for _, task := range tasks {
				c, _ := os.ReadFile(task)
				var pid int
				if _, err := fmt.Sscan(string(c), &pid); err == nil && pid > 0 {
					return pid
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatal("pod's PID 1 did not appear")
	return 0
}

// waitFile waits for path to exist.
func waitFile(t *testing.T, path string, timeout time.Duration) {
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

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, string(b))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
}

// signal sends sig to the run entrypoint's process (nspawn by then).
func signal(t *testing.T, cmd *exec.Cmd, sig syscall.Signal) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}
