// Package reaper is what the pod's systemd runs (through the stage2
// binary, "stage2 reaper APP") after each app of a stage1-host pod: it
// records the app's exit status, syncs the pod's journal (the app's last
// output on its way to rkt's stdout) and ends the pod when the first app
// fails or the last one ends. It lives beside stage2 because it runs
// inside the pod with the stage2 binary; the stage1 reads what it writes
// (StartedMarker, StatusDir) from the host side.
package reaper

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage2"
	"github.com/rktng/rkt/stage2/journal"
)

// Paths inside the pod.
const (
	StatusDir = "/" + stage1.StatusDir
	// failedMarker is created by the first app to fail: its status, not a
	// later one's, becomes the pod's.
	failedMarker = "/rkt/pod-failed"
	// cleanCodeFile holds the first non-zero status of an app that did
	// not fail (killed by SIGTERM, say): the pod's status when no app
	// fails.
	cleanCodeFile = "/rkt/pod-status"
)

// StartedMarker (in the pod) exists once an app's unit has started: a pod
// that ends without it failed before its apps started, which the run
// entrypoint reports as the stage1's failure (exit 254), not an app's.
const StartedMarker = "/rkt/apps-started"

// MarkStarted records that an app's unit started.
func MarkStarted() error {
	f, err := os.OpenFile(StartedMarker, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("marking the apps started: %w", err)
	}
	return f.Close()
}

// Result is how an app ended, from the variables systemd gives
// ExecStopPost commands.
type Result struct {
	// Status is the app's exit status, or 128+signal when a signal
	// killed it.
	Status int
	// Failed follows systemd's judgement (SERVICE_RESULT): a clean exit
	// or death by SIGTERM/SIGINT/SIGHUP/SIGPIPE is not a failure.
	Failed bool
}

// ResultFromEnv reads SERVICE_RESULT, EXIT_CODE and EXIT_STATUS. An app
// that never ran (its start failed before the main process existed) is a
// failure with status 254 unless systemd says otherwise.
func ResultFromEnv(getenv func(string) string) Result {
	r := Result{Failed: getenv("SERVICE_RESULT") != "success"}
	status := getenv("EXIT_STATUS")
	switch getenv("EXIT_CODE") {
	case "exited":
		if n, err := strconv.Atoi(status); err == nil {
			r.Status = n
		}
	case "killed", "dumped":
		if sig := unix.SignalNum("SIG" + status); sig != 0 {
			r.Status = 128 + int(sig)
		} else if n, err := strconv.Atoi(status); err == nil {
			r.Status = 128 + n
		}
	default:
		if r.Failed {
			r.Status = stage2.ExitConfig
		}
	}
	if r.Failed && r.Status == 0 {
		// A timeout or a watchdog: the process exited 0 too late.
		r.Status = 1
	}
	return r
}

// SyncWait bounds the wait for the pod's journald (to start, and to sync):
// well inside the unit's stop timeout (stage1/units' DefaultTimeoutStopSec),
// after which systemd would kill the reaper before it ends the pod.
const SyncWait = 5 * time.Second

// Reap records app's result in StatusDir, syncs the pod's journal so that
// the app's last output reaches rkt's stdout before anything ends the pod
// (see stage2/journal; a failed sync is reported on warn, and the pod
// still ends), and ends the pod when this was
// the first app to fail (with its status) or the last app to end. The
// pod's status is the first failure's, else the first non-zero status of
// an app that ended cleanly for systemd (143 for a service that a stop's
// SIGTERM killed), else 0: what `rkt status` shows for a single app is
// what `rkt run` returns.
func Reap(app string, r Result, warn io.Writer) error {
	// The unit started, even if a stop's SIGTERM came before stage2 could
	// say so.
	if err := MarkStarted(); err != nil {
		return err
	}
	if err := writeStatus(app, r.Status); err != nil {
		return err
	}
	if err := journal.Sync(SyncWait); err != nil {
		fmt.Fprintf(warn, "stage2 reaper: %v\n", err)
	}
	if r.Failed {
		if !createOnce(failedMarker, "") {
			return nil // an earlier failure is ending the pod
		}
		return endPod(r.Status, true)
	}
	if _, err := os.Stat(failedMarker); err == nil {
		return nil // a failure is ending the pod, with its status
	}
	if r.Status != 0 {
		createOnce(cleanCodeFile, strconv.Itoa(r.Status))
	}
	if !allEnded() {
		return nil
	}
	code := 0
	if b, err := os.ReadFile(cleanCodeFile); err == nil {
		code, _ = strconv.Atoi(string(b))
	}
	return endPod(code, code != 0)
}

// createOnce creates path with content unless it exists, and says whether
// it did. The content is written aside and linked: a reader sees all of it
// or no file.
func createOnce(path, content string) bool {
	tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return false
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path) == nil
}

func writeStatus(app string, status int) error {
	// Written aside and renamed: a reader sees the whole number or nothing.
	tmp := filepath.Join(filepath.Dir(StatusDir), ".status-"+app)
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(status)), 0o644); err != nil {
		return fmt.Errorf("recording status of app %s: %w", app, err)
	}
	if err := os.Rename(tmp, filepath.Join(StatusDir, app)); err != nil {
		return fmt.Errorf("recording status of app %s: %w", app, err)
	}
	return nil
}

// allEnded says whether every app of the pod has a status.
func allEnded() bool {
	cfgs, err := filepath.Glob(filepath.Join(stage2.ConfigDir, "*.json"))
	if err != nil || len(cfgs) == 0 {
		return true
	}
	for _, c := range cfgs {
		app := strings.TrimSuffix(filepath.Base(c), ".json")
		if _, err := os.Stat(filepath.Join(StatusDir, app)); err != nil {
			return false
		}
	}
	return true
}

// endPod asks the pod's systemd to exit. With a code (the first failure),
// through `systemctl exit CODE`, which sets the code nspawn (and so rkt)
// returns; without, through the halt signal, which this image's halt.target
// turns into an exit too, and which costs no process.
//
// The reaper does not speak D-Bus to the manager itself: systemd 252 leaves
// a method call unanswered when it arrives in the same read as the
// client's BEGIN, which is what a Go D-Bus client sends.
func endPod(code int, setCode bool) error {
	if setCode {
		cmd := exec.Command(Systemctl, "--no-block", "exit", strconv.Itoa(code))
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("asking the pod's systemd to exit with %d: %v: %s", code, err, out)
		if kerr := syscall.Kill(1, sigRTMIN+3); kerr != nil {
			return errors.Join(err, fmt.Errorf("signalling the pod's systemd: %w", kerr))
		}
		return err
	}
	if err := syscall.Kill(1, sigRTMIN+3); err != nil {
		return fmt.Errorf("signalling the pod's systemd: %w", err)
	}
	return nil
}

// Systemctl is the pod's systemctl.
const Systemctl = "/usr/bin/systemctl"

// sigRTMIN is the C library's SIGRTMIN, the base of systemd's signals:
// SIGRTMIN+3 is "halt".
const sigRTMIN = syscall.Signal(34)
