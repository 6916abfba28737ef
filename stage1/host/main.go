// Command stage1-host is every program of the stage1-host image in one
// binary, chosen by the name it runs as (the image's /init, /enter, /gc and
// /stop link to it) or by its first argument:
//
//	init|run [run flags] UUID     the run entrypoint (stage1/boot)
//	enter --pid=PID --appname=APP -- CMD...
//	stop [--force] UUID
//	gc [--debug] [--local-config=P] UUID
//
// What runs inside the pod is the stage2 binary, kept small.
// The contract's entrypoints run with the pod directory as working
// directory.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage1/boot"
	"github.com/rktng/rkt/stage1/enter"
	"github.com/rktng/rkt/stage1/teardown"
)

// exitStage1 is the status of a stage1 that failed itself.
const exitStage1 = stage1.ExitFailure

var verbs = map[string]func(args []string) (int, error){
	"init":  run,
	"run":   run,
	"enter": enterPod,
	"stop":  stop,
	"gc":    gc,
	// Inside the pod, from supervisor-ready.service.
	"supervisor-ready": supervisorReady,
}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	verb, ok := verbs[name]
	if !ok && len(args) > 0 {
		verb, ok = verbs[args[0]]
		name, args = args[0], args[1:]
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "stage1-host: run as init, enter, stop or gc")
		os.Exit(exitStage1)
	}
	if (name == "init" || name == "run") && !boot.Supervised() {
		supervise(args)
	}
	code, err := verb(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 %s: %v\n", name, err)
	}
	os.Exit(code)
}

// supervisorReady runs inside the pod once its apps are started: it
// writes /rkt/supervisor-status -> ready, which rkt 1.30's `status
// --wait-ready` polls.
func supervisorReady(_ []string) (int, error) {
	p := filepath.Join("/", stage1.SupervisorStatusFile)
	tmp := p + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(stage1.SupervisorReady, tmp); err != nil {
		return 1, err
	}
	if err := os.Rename(tmp, p); err != nil {
		return 1, err
	}
	return 0, nil
}

// supervise runs the pod under boot.Supervise and exits with its status,
// or dies of the signal that killed nspawn.
func supervise(args []string) {
	debug := os.Getenv(stage1.EnvDebug) == "1"
	if ra, err := stage1.ParseRunArgs(args); err == nil && ra.Debug {
		debug = true
	}
	podDir, err := os.Getwd()
	if err != nil {
		fmt.Fprint(os.Stderr, stage1.FailureLine(os.Getenv, "pod directory: "+err.Error()))
		os.Exit(exitStage1)
	}
	code, sig := boot.Supervise(podDir, debug, os.Stderr)
	if sig != 0 {
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig)
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	ra, err := stage1.ParseRunArgs(args)
	if err != nil {
		return exitStage1, err
	}
	if os.Getenv(stage1.EnvDebug) == "1" {
		ra.Debug = true
	}
	plan, err := boot.Prepare(ra, ".", os.Stderr)
	if err != nil {
		return exitStage1, err
	}
	podDir, err := os.Getwd()
	if err != nil {
		return exitStage1, err
	}
	if err := plan.Place(context.Background(), podDir, ra.UUID); err != nil {
		return exitStage1, err
	}
	return exitStage1, plan.Exec()
}

func enterPod(args []string) (int, error) {
	ea, err := stage1.ParseEnterArgs(args)
	if err != nil {
		return exitStage1, err
	}
	code, err := enter.Run(ea)
	if err != nil {
		return exitStage1, err
	}
	return code, nil
}

func stop(args []string) (int, error) {
	sa, err := stage1.ParseStopArgs(args)
	if err != nil {
		return exitStage1, err
	}
	if err := teardown.Stop(".", sa.Force, os.Stderr); err != nil {
		return exitStage1, err
	}
	return 0, nil
}

func gc(args []string) (int, error) {
	ga, err := stage1.ParseGCArgs(args)
	if err != nil {
		return exitStage1, err
	}
	podDir, err := os.Getwd()
	if err != nil {
		return exitStage1, err
	}
	if err := teardown.GC(context.Background(), podDir, ga.UUID); err != nil {
		return exitStage1, err
	}
	return 0, nil
}
