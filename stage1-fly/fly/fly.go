// Package fly is the fly stage1: it runs a pod's single app directly on the
// host, in a private mount namespace and a chroot, with no other isolation.
// Main runs one entrypoint (run, enter, stop, gc). The stage1 image's binary
// (stage1-fly) calls it with the name it was started under; stage0 calls it
// in its own process for the run entrypoint when the pod's stage1 image was
// built from the same sources as itself (stage0/launch), which spares a
// program start. ../README.md describes the image and what fly does not
// enforce.
package fly

import (
	"fmt"
	"io"
	"runtime"

	"github.com/rktng/rkt/common/stage1"
)

// exitStage1Failure is the status of a stage1 that failed itself (CONTRACT.md).
const exitStage1Failure = stage1.ExitFailure

// Env is what an entrypoint reads of its environment: os.Getenv in the
// binary, stage0's handover variables over it in stage0.
type Env func(key string) string

// logger writes fly's diagnostics: one line each.
type logger struct {
	w     io.Writer
	entry string
	debug bool
	env   Env
}

func (l *logger) warnf(format string, args ...any) {
	fmt.Fprintf(l.w, "stage1-fly %s: warning: %s\n", l.entry, fmt.Sprintf(format, args...))
}

func (l *logger) debugf(format string, args ...any) {
	if l.debug {
		fmt.Fprintf(l.w, "stage1-fly %s: %s\n", l.entry, fmt.Sprintf(format, args...))
	}
}

// Main runs entrypoint entry with args and returns the exit status of the
// process. run and enter return only on failure: on success the process
// became the app or the command. They change the calling thread's mount
// namespace, root and working directory and exec from it, so Main locks
// the calling goroutine to its thread for good.
func Main(entry string, args []string, env Env, stderr io.Writer) int {
	log := &logger{w: stderr, entry: entry, debug: env(stage1.EnvDebug) == "1", env: env}
	var err error
	switch entry {
	case "run":
		runtime.LockOSThread()
		err = run(log, args)
	case "enter":
		runtime.LockOSThread()
		err = enter(log, args)
	case "stop":
		err = stop(args)
	case "gc":
		err = gc(args)
	default:
		err = fmt.Errorf("unknown entrypoint %q: start fly as run, enter, stop or gc", entry)
	}
	if err == nil {
		return 0
	}
	if entry == "run" {
		// Every failure of run is before the app starts (the app
		// replaces fly): it is reported as rkt reports its own.
		log.debugf("%v", err)
		fmt.Fprint(stderr, stage1.FailureLine(env, err.Error()))
	} else {
		fmt.Fprintf(stderr, "stage1-fly %s: %v\n", entry, err)
	}
	return exitStage1Failure
}
