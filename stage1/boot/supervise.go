package boot

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage1/units"
	"github.com/rktng/rkt/stage2/reaper"
)

// envSupervised marks the supervisor's child: the run entrypoint again,
// which prepares the pod, joins its cgroups and becomes nspawn.
const envSupervised = "RKT_STAGE1_SUPERVISED"

// Supervised says whether this process is the supervisor's child.
func Supervised() bool { return os.Getenv(envSupervised) == "1" }

// heldLines bounds what is kept of nspawn's stderr before the apps start.
const heldLines = 200

// Supervise runs the pod as a child of this process (self, the run
// entrypoint, again with envSupervised) and stays outside the pod's
// cgroups to do what an exec'd nspawn cannot:
//
//   - SIGTERM and SIGINT to rkt become the pod's stop request
//     (units.RequestStop), which waits for the apps to start. nspawn's own
//     translation (one halt signal to the pod's PID 1) is lost while the
//     pod's systemd has no handler yet, and a second SIGTERM makes nspawn
//     kill the pod.
//   - A pod that fails before any app started (reaper.StartedMarker) is the
//     stage1's failure: one stage1.FailureLine, exit 254; what nspawn and
//     the child printed is held back and shown only under debug.
//   - Otherwise the pod's status is nspawn's; a signal that killed nspawn
//     is returned so that the caller dies of it too.
//
// The child dies with this process (SIGKILL as parent-death signal), as
// nspawn did when it was rkt's process. Errors, and the child's stderr as
// filtered above, go to stderr; the child has this process's stdin and
// stdout, the pod's console. The returned code is the run entrypoint's
// status.
func Supervise(podDir string, debug bool, stderr io.Writer) (code int, sig syscall.Signal) {
	fail := func(err error) (int, syscall.Signal) {
		fmt.Fprint(stderr, stage1.FailureLine(os.Getenv, err.Error()))
		return stage1.ExitFailure, 0
	}
	rootfs := pod.Stage1RootfsPath(podDir)
	self, err := os.Executable()
	if err != nil {
		return fail(fmt.Errorf("finding the stage1 entrypoint: %w", err))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("starting the pod: %w", err))
	}
	cmd := &exec.Cmd{Path: self, Args: os.Args, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: w}
	cmd.Env = append(os.Environ(), envSupervised+"=1")
	lockFD := -1
	if s := os.Getenv(stage1.EnvLockFD); s != "" {
		if lockFD, err = strconv.Atoi(s); err != nil {
			return fail(fmt.Errorf("%s=%q: %w", stage1.EnvLockFD, s, stage1.ErrUsage))
		}
		cmd.ExtraFiles = []*os.File{os.NewFile(uintptr(lockFD), "pod lock")}
		cmd.Env = append(cmd.Env, stage1.EnvLockFD+"=3")
	}
	// The parent-death signal is sent when the forking thread exits:
	// this one never does.
	runtime.LockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	started := func() bool {
		_, err := os.Stat(filepath.Join(rootfs, reaper.StartedMarker))
		return err == nil
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return fail(fmt.Errorf("starting the pod: %w", err))
	}
	if lockFD >= 0 {
		// The lock is nspawn's now: the pod is running while it lives.
		syscall.Close(lockFD)
	}
	f := &stderrFilter{out: stderr, started: started, done: make(chan struct{})}
	go f.copy(r)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for ended := false; !ended; {
		select {
		case <-sigs:
			if err := units.RequestStop(rootfs); err != nil {
				fmt.Fprintf(stderr, "stage1: %v\n", err)
			}
		case <-waited:
			ended = true
		}
	}
	signal.Stop(sigs)
	// nspawn's stderr may be held open by a process that outlives it.
	select {
	case <-f.done:
	case <-time.After(time.Second):
		r.Close()
	}
	return f.finish(cmd.ProcessState, started(), debug)
}

// stderrFilter copies the child's stderr to out, holding it back until
// the apps have started.
type stderrFilter struct {
	out     io.Writer
	started func() bool
	done    chan struct{}

	mu      sync.Mutex
	held    []string
	passing bool
}

func (f *stderrFilter) copy(r io.ReadCloser) {
	defer close(f.done)
	defer r.Close()
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			f.line(line)
		}
		if err != nil {
			return
		}
	}
}

func (f *stderrFilter) line(l string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.passing && f.started() {
		f.flush()
	}
	if f.passing {
		io.WriteString(f.out, l)
		return
	}
	if len(f.held) == heldLines {
		f.held = f.held[1:]
	}
	f.held = append(f.held, l)
}

// flush writes what was held and passes everything from now on.
func (f *stderrFilter) flush() {
	for _, l := range f.held {
		io.WriteString(f.out, l)
	}
	f.held, f.passing = nil, true
}

// finish reports how the child ended and returns the entrypoint's status.
func (f *stderrFilter) finish(ps *os.ProcessState, started, debug bool) (int, syscall.Signal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ws, _ := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		f.flush()
		return 128 + int(ws.Signal()), ws.Signal()
	}
	code := ws.ExitStatus()
	if started || code == 0 {
		f.flush()
		return code, 0
	}
	io.WriteString(f.out, f.failure(code, debug))
	return stage1.ExitFailure, 0
}

// failure is the line reporting a pod that ended with code before its
// apps started; under debug, what was held is written out first.
func (f *stderrFilter) failure(code int, debug bool) string {
	cause := failureCause(f.held, code)
	if debug {
		f.flush()
	}
	f.held = nil
	return stage1.FailureLine(os.Getenv, cause)
}

// failureCause names why the pod ended before its apps started: the
// child's own error (exit 254, "stage1 init: CAUSE"), else nspawn's last
// line.
func failureCause(held []string, code int) string {
	last := ""
	for i := len(held) - 1; i >= 0 && last == ""; i-- {
		last = strings.TrimSpace(held[i])
	}
	if code == stage1.ExitFailure && strings.HasPrefix(last, childErrorPrefix) {
		if _, cause, ok := strings.Cut(last, ": "); ok {
			return cause
		}
	}
	if last == "" {
		return fmt.Sprintf("the pod ended with status %d before its apps started", code)
	}
	return fmt.Sprintf("systemd-nspawn failed before the apps started (status %d): %s", code, last)
}

// childErrorPrefix starts the child's own error line (stage1/host).
const childErrorPrefix = "stage1 "
