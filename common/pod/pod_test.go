package pod

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rktng/rkt/common/stage1"
)

// The test binary doubles as a helper process that holds a pod lock, so that
// the tests can kill it and watch the state flip.
const helperEnv = "POD_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Getenv("POD_TEST_DIR"), os.Getenv("POD_TEST_UUID")))
	}
	os.Exit(m.Run())
}

func helper(mode, dataDir, uuid string) int {
	var p *Pod
	var err error
	switch mode {
	case "prepare":
		p, err = NewPod(dataDir)
	case "run":
		p, err = Load(dataDir, uuid)
		if err == nil {
			err = p.ToRun()
		}
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println(p.UUID.String())
	time.Sleep(time.Minute)
	return 0
}

// startHelper runs the helper and returns once it holds the lock, with the
// UUID it printed.
func startHelper(t *testing.T, mode, dataDir, uuid string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "POD_TEST_DIR="+dataDir, "POD_TEST_UUID="+uuid)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.HasPrefix(line, "error") {
		t.Fatalf("helper %s: %q %v", mode, line, err)
	}
	return cmd, strings.TrimSpace(line)
}

func killHelper(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

func mustLoad(t *testing.T, dataDir, uuid string) *Pod {
	t.Helper()
	p, err := Load(dataDir, uuid)
	if err != nil {
		t.Fatalf("Load(%s): %v", uuid, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func wantState(t *testing.T, dataDir, uuid string, want State) {
	t.Helper()
	p := mustLoad(t, dataDir, uuid)
	if p.State() != want {
		t.Fatalf("pod %s: state %q, want %q", uuid, p.State(), want)
	}
	p.Close()
}

// dirsHolding lists the state directories that hold uuid.
func dirsHolding(t *testing.T, dataDir, uuid string) []string {
	t.Helper()
	var in []string
	for _, d := range stateDirs {
		if _, err := os.Stat(filepath.Join(PodsDir(dataDir), d, uuid)); err == nil {
			in = append(in, d)
		}
	}
	return in
}

func TestLifecycle(t *testing.T) {
	dataDir := t.TempDir()
	p, err := NewPod(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u := p.UUID.String()
	if p.UUID[6]>>4 != 4 || p.UUID[8]>>6 != 2 {
		t.Errorf("UUID %s is not a random (v4) UUID", u)
	}
	if p.State() != Preparing || p.Path() != filepath.Join(dataDir, "pods", "prepare", u) || !p.Locked() {
		t.Fatalf("new pod: state %s path %s locked %v", p.State(), p.Path(), p.Locked())
	}
	wantState(t, dataDir, u, Preparing)

	if err := p.ToPrepared(); err != nil {
		t.Fatal(err)
	}
	if p.Locked() || p.State() != Prepared {
		t.Fatalf("after ToPrepared: locked %v state %s", p.Locked(), p.State())
	}
	wantState(t, dataDir, u, Prepared)

	if err := p.ToRun(); err != nil {
		t.Fatal(err)
	}
	wantState(t, dataDir, u, Running)
	if got := dirsHolding(t, dataDir, u); len(got) != 1 || got[0] != "run" {
		t.Fatalf("pod in %v, want [run]", got)
	}

	// Another Pod for the same directory cannot mark it while it runs.
	other := mustLoad(t, dataDir, u)
	if err := other.ToExitedGarbage(); !errors.Is(err, ErrBadState) {
		t.Fatalf("ToExitedGarbage of a running pod: %v, want ErrBadState", err)
	}

	p.Close() // the "stage1" ends
	if err := other.Refresh(); err != nil || other.State() != Exited {
		t.Fatalf("after the lock holder ended: %s %v", other.State(), err)
	}
	before := time.Now().Add(-time.Second)
	if err := other.ToExitedGarbage(); err != nil {
		t.Fatal(err)
	}
	if other.State() != ExitedGarbage || other.Locked() {
		t.Fatalf("after ToExitedGarbage: %s locked %v", other.State(), other.Locked())
	}
	wantState(t, dataDir, u, ExitedGarbage)
	if mark := other.GCMarkTime(); mark.Before(before) || mark.After(time.Now().Add(time.Second)) {
		t.Errorf("GCMarkTime %v, want about now", mark)
	}

	// gc takes the lock to delete: "exited deleting".
	if err := other.TryExclusiveLock(); err != nil {
		t.Fatal(err)
	}
	wantState(t, dataDir, u, ExitedDeleting)
	if other.State().JSONName() != "exited" {
		t.Errorf("JSONName of %s: %s", other.State(), other.State().JSONName())
	}
}

func TestToGarbage(t *testing.T) {
	dataDir := t.TempDir()
	// prepared -> garbage
	p, err := NewPod(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ToPrepared(); err != nil {
		t.Fatal(err)
	}
	if err := p.ToGarbage(); err != nil {
		t.Fatal(err)
	}
	wantState(t, dataDir, p.UUID.String(), Garbage)
	if p.GCMarkTime().IsZero() {
		t.Error("garbage pod has no mark time")
	}
	if err := p.ToRun(); !errors.Is(err, ErrBadState) {
		t.Errorf("ToRun of garbage: %v, want ErrBadState", err)
	}

	// aborted prepare (creator gone) -> garbage
	q, err := NewPod(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	u := q.UUID.String()
	q.Close()
	r := mustLoad(t, dataDir, u)
	if r.State() != AbortedPrepare || r.State().JSONName() != "garbage" {
		t.Fatalf("state %s (json %s), want aborted prepare (garbage)", r.State(), r.State().JSONName())
	}
	if err := r.ToGarbage(); err != nil {
		t.Fatal(err)
	}
	wantState(t, dataDir, u, Garbage)

	// Our own preparing pod may be thrown away; it stays locked ("deleting").
	s, err := NewPod(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.ToGarbage(); err != nil {
		t.Fatal(err)
	}
	if s.State() != Deleting {
		t.Errorf("state %s, want deleting", s.State())
	}
	wantState(t, dataDir, s.UUID.String(), Deleting)
}

func TestToRunLockedElsewhere(t *testing.T) {
	dataDir := t.TempDir()
	p, err := NewPod(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ToPrepared(); err != nil {
		t.Fatal(err)
	}
	a := mustLoad(t, dataDir, p.UUID.String())
	b := mustLoad(t, dataDir, p.UUID.String())
	if err := a.TrySharedLock(); err != nil {
		t.Fatal(err)
	}
	if err := b.ToRun(); !errors.Is(err, ErrLocked) {
		t.Fatalf("ToRun while locked elsewhere: %v, want ErrLocked", err)
	}
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := b.ToRun(); err != nil {
		t.Fatal(err)
	}
	// The loser of a run race finds the pod gone from prepared/.
	b.Close()
	if err := a.ToRun(); !errors.Is(err, ErrBadState) {
		t.Fatalf("second ToRun: %v, want ErrBadState", err)
	}
	if a.Locked() {
		t.Error("failed ToRun left the lock held")
	}
}

func TestBadTransitions(t *testing.T) {
	dataDir := t.TempDir()
	p, err := NewPod(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ToExitedGarbage(); !errors.Is(err, ErrBadState) {
		t.Errorf("preparing -> exited garbage: %v", err)
	}
	q := mustLoad(t, dataDir, p.UUID.String())
	if err := q.ToPrepared(); !errors.Is(err, ErrBadState) {
		t.Errorf("ToPrepared by a non-creator: %v", err)
	}
	if err := q.ToRun(); !errors.Is(err, ErrBadState) {
		t.Errorf("ToRun of someone else's preparing pod: %v", err)
	}
	if err := q.TryExclusiveLock(); !errors.Is(err, ErrLocked) {
		t.Errorf("TryExclusiveLock of a preparing pod: %v", err)
	}
	if err := q.ToGarbage(); !errors.Is(err, ErrBadState) {
		t.Errorf("ToGarbage of a preparing pod: %v", err)
	}
}

// TestKillSafety kills lock holders with SIGKILL: the pod stays in exactly
// one state directory and its state flips to aborted prepare / exited.
func TestKillSafety(t *testing.T) {
	dataDir := t.TempDir()
	cmd, u := startHelper(t, "prepare", dataDir, "")
	wantState(t, dataDir, u, Preparing)
	killHelper(t, cmd)
	wantState(t, dataDir, u, AbortedPrepare)
	if got := dirsHolding(t, dataDir, u); len(got) != 1 {
		t.Fatalf("pod in %v", got)
	}

	p, err := NewPod(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ToPrepared(); err != nil {
		t.Fatal(err)
	}
	u = p.UUID.String()
	cmd, _ = startHelper(t, "run", dataDir, u)
	wantState(t, dataDir, u, Running)

	// WaitExited wakes up when the holder dies.
	waiter := mustLoad(t, dataDir, u)
	done := make(chan error, 1)
	go func() { done <- waiter.WaitExited(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("WaitExited returned while running: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	killed := time.Now()
	killHelper(t, cmd)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(killed); waited > time.Second {
			t.Errorf("WaitExited took %v after the kill", waited)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitExited did not return after the lock holder died")
	}
	if waiter.State() != Exited {
		t.Errorf("after WaitExited: %s", waiter.State())
	}
	wantState(t, dataDir, u, Exited)
	if got := dirsHolding(t, dataDir, u); len(got) != 1 || got[0] != "run" {
		t.Fatalf("pod in %v, want [run]", got)
	}
}

func TestWaitExitedContext(t *testing.T) {
	dataDir := t.TempDir()
	p, err := NewPod(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ToRun(); err != nil {
		t.Fatal(err)
	}
	w := mustLoad(t, dataDir, p.UUID.String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := w.WaitExited(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitExited: %v, want deadline exceeded", err)
	}
	p.Close() // also lets the abandoned waiter finish
	if err := w.WaitExited(context.Background()); err != nil || w.State() != Exited {
		t.Fatalf("WaitExited after exit: %v %s", err, w.State())
	}
}

// makePod creates pods/<dir>/<uuid> by hand.
func makePod(t *testing.T, dataDir, dir, uuid string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(PodsDir(dataDir), dir, uuid), 0o750); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPrefix(t *testing.T) {
	dataDir := t.TempDir()
	makePod(t, dataDir, "prepared", "aaaa1111-0000-4000-8000-000000000001")
	makePod(t, dataDir, "run", "aaaa2222-0000-4000-8000-000000000002")
	makePod(t, dataDir, "garbage", "bbbb0000-0000-4000-8000-000000000003")
	// junk that must be ignored
	makePod(t, dataDir, "run", "not-a-uuid")
	os.WriteFile(filepath.Join(PodsDir(dataDir), "run", "bbbb0000-0000-4000-8000-00000000000f"), nil, 0o644)

	for _, tc := range []struct {
		arg  string
		want string
		err  error
	}{
		{"aaaa1", "aaaa1111-0000-4000-8000-000000000001", nil},
		{"AAAA2222-0000", "aaaa2222-0000-4000-8000-000000000002", nil},
		{"aaaa22220000", "aaaa2222-0000-4000-8000-000000000002", nil},
		{"b", "bbbb0000-0000-4000-8000-000000000003", nil},
		{"bbbb0000-0000-4000-8000-000000000003", "bbbb0000-0000-4000-8000-000000000003", nil},
		{"bbbb0000000040008000000000000003", "bbbb0000-0000-4000-8000-000000000003", nil},
		{"aaaa", "", ErrAmbiguous},
		{"c", "", ErrNotFound},
		{"", "", ErrNotFound},
		{"not-a", "", ErrNotFound},
		{"bbbb0000-0000-4000-8000-00000000000f", "", ErrNotFound},
		{"cccc0000-0000-4000-8000-000000000003", "", ErrNotFound},
	} {
		p, err := Load(dataDir, tc.arg)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Load(%q): %v, want %v", tc.arg, err, tc.err)
			}
			if tc.err == ErrAmbiguous && (!strings.Contains(err.Error(), "aaaa1111") || !strings.Contains(err.Error(), "aaaa2222")) {
				t.Errorf("ambiguity error does not name the candidates: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Load(%q): %v", tc.arg, err)
			continue
		}
		if p.UUID.String() != tc.want {
			t.Errorf("Load(%q) = %s, want %s", tc.arg, p.UUID, tc.want)
		}
		p.Close()
	}
	p := mustLoad(t, dataDir, "aaaa2")
	if p.State() != Exited {
		t.Errorf("unlocked pod in run/: %s, want exited", p.State())
	}
}

func TestListWhilePodsMove(t *testing.T) {
	dataDir := t.TempDir()
	const n = 40
	var pods []*Pod
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		p, err := NewPod(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.ToPrepared(); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
		want[p.UUID.String()] = true
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, p := range pods {
			if err := p.ToRun(); err != nil {
				t.Error(err)
				return
			}
			if err := p.Unlock(); err != nil {
				t.Error(err)
				return
			}
			if err := p.Refresh(); err != nil {
				t.Error(err)
				return
			}
			if err := p.ToExitedGarbage(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for round := 0; round < 20; round++ {
		list, err := List(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		prev := ""
		for _, p := range list {
			u := p.UUID.String()
			if seen[u] {
				t.Errorf("round %d: %s listed twice", round, u)
			}
			if u <= prev {
				t.Errorf("round %d: not sorted: %s after %s", round, u, prev)
			}
			prev = u
			seen[u] = true
			if s := p.State(); s != Prepared && s != Running && s != Exited && s != ExitedGarbage {
				t.Errorf("round %d: %s in state %s", round, u, s)
			}
			p.Close()
		}
		if len(seen) != n {
			t.Errorf("round %d: listed %d pods, want %d", round, len(seen), n)
		}
	}
	wg.Wait()
	list, err := List(dataDir, ExitedGarbage)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Errorf("List(exited garbage): %d pods, want %d", len(list), n)
	}
	for _, p := range list {
		p.Close()
	}
	if list, _ := List(dataDir, Prepared, Running); len(list) != 0 {
		t.Errorf("List(prepared, running): %d pods, want 0", len(list))
	}
}

func TestPIDFiles(t *testing.T) {
	dataDir := t.TempDir()
	p, err := NewPod(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ToRun(); err != nil {
		t.Fatal(err)
	}
	// pid file created empty, then written, while PID waits
	os.WriteFile(filepath.Join(p.Path(), "pid"), nil, 0o644)
	go func() {
		time.Sleep(30 * time.Millisecond)
		os.WriteFile(filepath.Join(p.Path(), "pid"), []byte("4242\n"), 0o644)
	}()
	q := mustLoad(t, dataDir, p.UUID.String())
	if pid, err := q.PID(); err != nil || pid != 4242 {
		t.Fatalf("PID: %d %v", pid, err)
	}
	if at, ok := q.StartedAt(); !ok || time.Since(at) > time.Minute {
		t.Errorf("StartedAt from pid file: %v %v", at, ok)
	}
	os.Remove(filepath.Join(p.Path(), "pid"))

	// ppid: the only child of that process
	sh := exec.Command("/bin/sh", "-c", "sleep 30 & wait")
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sh.Process.Kill(); sh.Wait() }()
	os.WriteFile(filepath.Join(p.Path(), "ppid"), []byte(fmt.Sprint(sh.Process.Pid)), 0o644)
	pid, err := q.PID()
	if err != nil {
		t.Fatal(err)
	}
	// The forked child is the right pid at once, but it shows as "sleep"
	// only after its exec: give it that moment.
	var stat []byte
	for i := 0; i < 100; i++ {
		if stat, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(stat), "(sleep)") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if f := strings.Fields(string(stat)); f[3] != fmt.Sprint(sh.Process.Pid) || !strings.Contains(f[1], "sleep") {
		t.Errorf("PID %d is %s (ppid %s), want the sleep child of %d", pid, f[1], f[3], sh.Process.Pid)
	}

	// an exited pod without any pid file does not wait
	os.Remove(filepath.Join(p.Path(), "ppid"))
	p.Close()
	start := time.Now()
	if _, err := q.PID(); !errors.Is(err, ErrNotFound) || time.Since(start) > time.Second {
		t.Errorf("PID of exited pod without pid: %v after %v", err, time.Since(start))
	}
}

func TestAppExitCodeAndTimes(t *testing.T) {
	dataDir := t.TempDir()
	p, err := NewPod(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.CreatedAt().IsZero() {
		t.Error("CreatedAt before pod-created exists")
	}
	os.WriteFile(filepath.Join(p.Path(), CreatedFile), nil, 0o644)
	if time.Since(p.CreatedAt()) > time.Minute {
		t.Errorf("CreatedAt %v", p.CreatedAt())
	}
	if _, err := p.AppExitCode("web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AppExitCode before exit: %v", err)
	}
	if err := os.MkdirAll(StatusDir(p.Path()), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(AppStatusPath(p.Path(), "web"), []byte("7"), 0o644)
	if code, err := p.AppExitCode("web"); err != nil || code != 7 {
		t.Errorf("AppExitCode: %d %v", code, err)
	}
	if _, err := p.AppExitCode("../pod"); err == nil {
		t.Error("AppExitCode accepted a path")
	}
	// overlay: the upper directory wins
	os.WriteFile(filepath.Join(p.Path(), OverlayMarker), nil, 0o644)
	os.WriteFile(filepath.Join(p.Path(), Stage1TreeFile), []byte("deps-sha512-abc\n"), 0o644)
	upper := filepath.Join(OverlayUpperPath(p.Path(), "deps-sha512-abc", ""), stage1.StatusDir)
	os.MkdirAll(upper, 0o755)
	os.WriteFile(filepath.Join(upper, "web"), []byte("3\n"), 0o644)
	if code, err := p.AppExitCode("web"); err != nil || code != 3 {
		t.Errorf("AppExitCode from overlay upper: %d %v", code, err)
	}
	if err := p.ToRun(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	q := mustLoad(t, dataDir, p.UUID.String())
	if at, ok := q.ExitedAt(); !ok || time.Since(at) > time.Minute {
		t.Errorf("ExitedAt: %v %v", at, ok)
	}
}

func TestUUIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "uuid")
	const u = "6f03e56e-efa1-4f0f-9b8f-492cf1824c83"
	if err := WriteUUIDFile(path, u); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != u {
		t.Errorf("file holds %q", b)
	}
	if err := os.WriteFile(path, []byte(strings.ToUpper(u)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadUUIDFile(path); err != nil || got != u {
		t.Errorf("ReadUUIDFile: %q %v", got, err)
	}
	os.WriteFile(path, []byte("garbage"), 0o644)
	if _, err := ReadUUIDFile(path); err == nil {
		t.Error("ReadUUIDFile accepted garbage")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestJSONName(t *testing.T) {
	allowed := map[string]bool{"embryo": true, "preparing": true, "prepared": true, "running": true, "deleting": true, "exited": true, "garbage": true}
	for _, s := range []State{Embryo, Preparing, AbortedPrepare, Prepared, Running, Exited, ExitedGarbage, ExitedDeleting, Garbage, Deleting} {
		if !allowed[s.JSONName()] {
			t.Errorf("%s.JSONName() = %q, not a state clients know", s, s.JSONName())
		}
	}
}
