// Command fly is the binary of the fly stage1 image (package fly does the
// work). One static binary serves every entrypoint; the name it is started
// under (argv[0]'s base name: run, enter, stop, gc) picks the entrypoint,
// so the stage1 image holds /fly and symlinks /run, /enter, /stop, /gc ->
// fly. README.md beside this file describes the image.

// The runtime's cgroup-aware GOMAXPROCS reads cgroup files at start-up and
// rechecks them later: wasted work for a process that execs in a few ms.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"os"
	"path/filepath"
	"runtime"

	"github.com/rktng/rkt/stage1-fly/fly"
)

func init() {
	// run and enter change the mount namespace, root and working directory
	// of the calling thread and exec from it: in the binary, all of it
	// happens on the main thread, from the start.
	runtime.LockOSThread()
}

func main() {
	entry := filepath.Base(os.Args[0])
	args := os.Args[1:]
	// "fly ENTRY ARGS..." works too, for running the binary by hand.
	if entry == "fly" && len(args) > 0 {
		entry, args = args[0], args[1:]
	}
	os.Exit(fly.Main(entry, args, os.Getenv, os.Stderr))
}
