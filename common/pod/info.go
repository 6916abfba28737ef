package pod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/stage1"
)

// Files are read relative to the open pod directory, so that a pod moving
// between state directories meanwhile is no problem.

// readFile reads name (a path relative to the pod directory).
func (p *Pod) readFile(name string) ([]byte, error) {
	if p.fd < 0 {
		return nil, fmt.Errorf("reading %s of pod %s: closed", name, p.UUID)
	}
	fd, err := unix.Openat(p.fd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &fileError{op: "open", dir: p.Path(), name: name, err: err}
	}
	// Read without an *os.File: list reads several small files of every
	// pod, and os.NewFile costs a fcntl(2) and a finalizer each time.
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fileError{op: "read", dir: p.Path(), name: name, err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// fileError is a failed open or read of a file in the pod directory, as
// an *os.PathError says it, and ErrNotFound when the file is missing. Its
// message is built only when printed: list meets missing files in most
// pods and only tests for them.
type fileError struct {
	op, dir, name string
	err           error
}

func (e *fileError) Error() string {
	s := (&os.PathError{Op: e.op, Path: filepath.Join(e.dir, e.name), Err: e.err}).Error()
	if e.err == unix.ENOENT {
		s += ": " + ErrNotFound.Error()
	}
	return s
}

func (e *fileError) Unwrap() []error {
	if e.err == unix.ENOENT {
		return []error{e.err, ErrNotFound}
	}
	return []error{e.err}
}

func (p *Pod) readInt(name string) (int, error) {
	b, err := p.readFile(name)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		// Being written: stage1s write these with a single write(2).
		return 0, fmt.Errorf("%s of pod %s is empty: %w", name, p.UUID, ErrNotFound)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s of pod %s: %q is not a number", name, p.UUID, s)
	}
	return n, nil
}

// Manifest reads the pod manifest ("pod"), returning it parsed and raw.
// A pod being prepared may not have one yet (ErrNotFound).
func (p *Pod) Manifest() (*schema.PodManifest, []byte, error) {
	b, err := p.readFile(ManifestFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading manifest of pod %s: %w", p.UUID, err)
	}
	pm := &schema.PodManifest{}
	if err := pm.UnmarshalJSON(b); err != nil {
		return nil, nil, fmt.Errorf("parsing manifest of pod %s: %w", p.UUID, err)
	}
	return pm, b, nil
}

// pidWait bounds how long PID waits for a running pod's stage1 to write
// its pid or ppid file.
const pidWait = time.Second

// PID is the pid enter should join: the content of the pid file, or else
// the only child of the process named in the ppid file (a stage1 may write
// either). For a running pod whose stage1 has not written either yet, it
// polls for up to a second. An exited pod still reports the pid it had.
func (p *Pod) PID() (int, error) {
	deadline := time.Now().Add(pidWait)
	for {
		pid, err := p.readInt(PIDFile)
		if err == nil && pid > 0 {
			return pid, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
		ppid, err := p.readInt(PPIDFile)
		if err == nil && ppid > 0 {
			pid, err := onlyChild(ppid)
			if err == nil {
				return pid, nil
			}
			if !errors.Is(err, errNoChild) {
				return 0, fmt.Errorf("pid of pod %s: %w", p.UUID, err)
			}
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
		if err := p.Refresh(); err != nil {
			return 0, err
		}
		if p.state != Running || time.Now().After(deadline) {
			return 0, fmt.Errorf("pod %s (%s) has no pid: %w", p.UUID, p.state, ErrNotFound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var errNoChild = errors.New("no child yet")

// onlyChild returns the single child of ppid. Children are listed per
// thread (/proc/<ppid>/task/<tid>/children) and a Go stage1 may fork from
// any thread, so every thread is looked at.
func onlyChild(ppid int) (int, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", ppid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("process %d (ppid) is gone: %w", ppid, ErrNotFound)
		}
		return 0, err
	}
	var children []string
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", ppid, t.Name()))
		if err != nil {
			continue // the thread ended
		}
		children = append(children, strings.Fields(string(b))...)
	}
	switch len(children) {
	case 0:
		return 0, errNoChild
	case 1:
		return strconv.Atoi(children[0])
	}
	return 0, fmt.Errorf("process %d (ppid) has %d children, want one", ppid, len(children))
}

// exitCodeError is AppExitCode's error, formatted only when printed (see
// fileError).
type exitCodeError struct {
	app string
	pod types.UUID
	err error
}

func (e *exitCodeError) Error() string {
	return fmt.Sprintf("exit code of app %s in pod %s: %v", e.app, e.pod, e.err)
}

func (e *exitCodeError) Unwrap() error { return e.err }

// stage1Upper is the upper directory of the stage1 rootfs's overlay,
// relative to the pod directory, or "" when the pod has no stage1 tree
// (yet). The tree never changes once written, so it is read once per Pod.
// Where the stage1 rootfs is a copy rather than an overlay, the directory
// does not exist and reads below it fail as not found.
func (p *Pod) stage1Upper() string {
	if p.upper != "" {
		return p.upper
	}
	id, err := p.readFile(Stage1TreeFile)
	if err != nil {
		return ""
	}
	if id := strings.TrimSpace(string(id)); id != "" && !strings.Contains(id, "/") {
		p.upper = filepath.Join(OverlayDir, id, "upper")
	}
	return p.upper
}

// AppExitCode reads rkt/status/<app> in the stage1 rootfs: the app's exit
// code, written by stage1 when the app has exited (ErrNotFound before).
// When the stage1 rootfs is an overlay, the file is read from the overlay's
// upper directory, which holds it whether or not the overlay is mounted.
func (p *Pod) AppExitCode(app string) (int, error) {
	if _, err := types.NewACName(app); err != nil {
		return 0, fmt.Errorf("app name %q: %w", app, err)
	}
	rel := filepath.Join(stage1.StatusDir, app)
	var candidates []string
	if upper := p.stage1Upper(); upper != "" {
		candidates = append(candidates, filepath.Join(upper, rel))
	}
	candidates = append(candidates, filepath.Join(stage1RootfsRel, rel))
	var err error
	for _, c := range candidates {
		var code int
		code, err = p.readInt(c)
		if err == nil {
			return code, nil
		}
		if !errors.Is(err, ErrNotFound) {
			break
		}
	}
	return 0, &exitCodeError{app: app, pod: p.UUID, err: err}
}

// CreatedAt is when the pod was created: the mtime of pod-created, or of
// the pod manifest for pods made by rkt before 1.20. Zero when neither
// exists (yet).
func (p *Pod) CreatedAt() time.Time {
	for _, name := range []string{CreatedFile, ManifestFile} {
		if st, err := p.statAt(name); err == nil {
			return mtime(st)
		}
	}
	return time.Time{}
}

// StartedAt is when the pod was started: the mtime of pod-started (written
// by stage0 right before exec'ing stage1), else of the pid or ppid file.
func (p *Pod) StartedAt() (time.Time, bool) {
	switch p.state {
	case Embryo, Preparing, AbortedPrepare, Prepared:
		return time.Time{}, false // not started (as of the last look)
	}
	for _, name := range []string{StartedFile, PIDFile, PPIDFile} {
		if st, err := p.statAt(name); err == nil {
			return mtime(st), true
		}
	}
	return time.Time{}, false
}

// ExitedAt is when an exited pod's last app ended: the newest mtime among
// the rkt/status files. When the lock was released is not recorded
// anywhere, so a pod whose stage1 writes no status (fly) has no exit time.
func (p *Pod) ExitedAt() (time.Time, bool) {
	if !p.state.AfterRun() {
		return time.Time{}, false
	}
	var newest time.Time
	dirs := []string{filepath.Join(stage1RootfsRel, stage1.StatusDir)}
	if upper := p.stage1Upper(); upper != "" {
		dirs = append(dirs, filepath.Join(upper, stage1.StatusDir))
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(filepath.Join(p.Path(), d))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if info, err := e.Info(); err == nil && info.ModTime().After(newest) {
				newest = info.ModTime()
			}
		}
	}
	return newest, !newest.IsZero()
}

// GCMarkTime is when gc marked the pod as garbage: the ctime of its
// directory in exited-garbage/ or garbage/ (rename and ToGarbage set it).
// Zero for a pod not marked.
func (p *Pod) GCMarkTime() time.Time {
	if p.dir != dirExitedGarbage && p.dir != dirGarbage {
		return time.Time{}
	}
	var st unix.Stat_t
	if p.fd < 0 || unix.Fstat(p.fd, &st) != nil {
		return time.Time{}
	}
	return time.Unix(st.Ctim.Unix())
}

// WaitExited blocks until the pod is past running: it waits on a shared
// flock of the pod directory, which the kernel grants the moment the
// running stage1 (holder of the exclusive lock) ends. A pod not yet
// running (prepared) is polled until it starts. It returns ctx.Err() when
// ctx ends first; a blocked flock cannot be interrupted, so it is left to a
// goroutine that ends with the pod. On success the pod's State is fresh.
func (p *Pod) WaitExited(ctx context.Context) error {
	for {
		if err := p.Refresh(); err != nil {
			return err
		}
		switch p.state {
		case Running, Preparing:
			if err := p.waitUnlocked(ctx); err != nil {
				return err
			}
		case Embryo, Prepared:
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		default:
			return nil
		}
	}
}

// waitUnlocked takes and drops a shared lock through a second open file
// description of the pod directory, so that locks held through p are not
// converted.
func (p *Pod) waitUnlocked(ctx context.Context) error {
	fd, err := unix.Openat(p.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("waiting for pod %s: %w", p.UUID, err)
	}
	wait := func() error {
		defer unix.Close(fd)
		if err := flock(fd, unix.LOCK_SH); err != nil {
			return fmt.Errorf("waiting for pod %s: %w", p.UUID, err)
		}
		return nil
	}
	if ctx.Done() == nil {
		return wait()
	}
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SupervisorReady reports whether the pod's stage1 has said that its
// supervisor is ready (rkt/supervisor-status -> ready), looked up in the
// mounted stage1 rootfs and in its overlay upper dir (the mount may live in
// another mount namespace).
func (p *Pod) SupervisorReady() bool {
	paths := []string{filepath.Join(stage1RootfsRel, stage1.SupervisorStatusFile)}
	if upper := p.stage1Upper(); upper != "" {
		paths = append(paths, filepath.Join(upper, stage1.SupervisorStatusFile))
	}
	for _, rel := range paths {
		if t, err := os.Readlink(filepath.Join(p.Path(), rel)); err == nil && t == stage1.SupervisorReady {
			return true
		}
	}
	return false
}
