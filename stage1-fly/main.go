// Command fly is the fly stage1: it runs a pod's single app directly on the
// host, in a private mount namespace and a chroot, with no other isolation.
// One static binary serves every entrypoint; the name it is started under
// (argv[0]'s base name: run, enter, stop, gc) picks the entrypoint, so the
// stage1 image holds /fly and symlinks /run, /enter, /stop, /gc -> fly.
// README.md beside this file describes the image and what fly does not
// enforce.

// The runtime's cgroup-aware GOMAXPROCS reads cgroup files at start-up and
// rechecks them later: wasted work for a process that execs in a few ms.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/rktng/rkt/common/stage1"
)

// exitStage1Failure is the status of a stage1 that failed itself (CONTRACT.md).
const exitStage1Failure = stage1.ExitFailure

func init() {
	// run and enter change the mount namespace, root and working directory
	// of the calling thread and exec from it: everything must happen on the
	// main thread, from the start.
	runtime.LockOSThread()
}

// logger writes fly's diagnostics to stderr: one line each.
type logger struct {
	entry string
	debug bool
}

func (l *logger) warnf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "stage1-fly %s: warning: %s\n", l.entry, fmt.Sprintf(format, args...))
}

func (l *logger) debugf(format string, args ...any) {
	if l.debug {
		fmt.Fprintf(os.Stderr, "stage1-fly %s: %s\n", l.entry, fmt.Sprintf(format, args...))
	}
}

func main() {
	entry := filepath.Base(os.Args[0])
	args := os.Args[1:]
	// "fly ENTRY ARGS..." works too, for running the binary by hand.
	if entry == "fly" && len(args) > 0 {
		entry, args = args[0], args[1:]
	}
	log := &logger{entry: entry, debug: os.Getenv(stage1.EnvDebug) == "1"}
	var err error
	switch entry {
	case "run":
		err = run(log, args)
	case "enter":
		err = enter(log, args)
	case "stop":
		err = stop(args)
	case "gc":
		err = gc(args)
	default:
		err = fmt.Errorf("unknown entrypoint %q: start fly as run, enter, stop or gc", entry)
	}
	// run and enter only return on failure: on success the process became
	// the app or the command.
	if err != nil && entry == "run" {
		// Every failure of run is before the app starts (the app
		// replaces fly): it is reported as rkt reports its own.
		log.debugf("%v", err)
		fmt.Fprint(os.Stderr, stage1.FailureLine(os.Getenv, err.Error()))
		os.Exit(exitStage1Failure)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1-fly %s: %v\n", entry, err)
		os.Exit(exitStage1Failure)
	}
}
