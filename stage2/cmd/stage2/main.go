// Command stage2 is what runs inside the pod for each app. The pod's
// systemd runs it as the app's service (run: prepare the rootfs, pre-start
// handlers, exec the app), after the app (reaper: record the status, end
// the pod when it is time, see stage2/reaper; post-stop handlers), and the
// enter entrypoint runs it in the pod's namespaces (enter):
//
//	stage2 run APP
//	stage2 reaper APP
//	stage2 post-stop APP
//	stage2 enter APP -- CMD [ARGS...]
//
// It reads the App that the stage1 wrote at stage2.ConfigPath(APP). It is a
// small binary on purpose: it starts once or twice per app on the way to
// the app's first instruction and out of the pod.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/rktng/rkt/stage2"
	"github.com/rktng/rkt/stage2/journal"
	"github.com/rktng/rkt/stage2/reaper"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: stage2 run|post-stop|enter APP [-- CMD...]")
		return stage2.ExitConfig
	}
	verb, name := args[0], args[1]
	if verb == "reaper" {
		if err := reaper.Reap(name, reaper.ResultFromEnv(os.Getenv), os.Stderr); err != nil {
			fmt.Fprintf(os.Stderr, "stage2 reaper: %v\n", err)
			return stage2.ExitConfig
		}
		return 0
	}
	if verb == "run" {
		// Best effort: without the marker, a failure of this app would
		// be reported as the stage1's.
		_ = reaper.MarkStarted()
	}
	// The post-stop handlers' output is synced to the journal after them
	// (as the reaper syncs the app's), from the app's root: the
	// connection is made here, in the stage1's.
	var jc *journal.Conn
	if verb == "post-stop" {
		var jerr error
		if jc, jerr = journal.Dial(journal.Socket, reaper.SyncWait); jerr != nil {
			fmt.Fprintf(os.Stderr, "stage2 post-stop: %v\n", jerr)
		} else {
			defer jc.Close()
		}
	}
	app, err := stage2.Load(stage2.ConfigPath(name))
	if err == nil && verb == "run" {
		err = app.JoinCgroups()
	}
	// The app and its post-stop handlers each get a mount namespace of
	// their own: the post-stop handlers see the app's /proc and /dev
	// only when they are mounted again.
	if err == nil && (verb == "run" || verb == "post-stop") {
		if err = app.PrivateMounts(); err == nil {
			err = app.Prepare()
		}
	}
	if err == nil {
		err = app.EnterRoot()
	}
	if err == nil {
		switch verb {
		case "run":
			if err = app.RunHandlers("pre-start", app.PreStart); err == nil {
				err = app.ExecAs(app.Exec)
			}
		case "post-stop":
			err = app.RunHandlers("post-stop", app.PostStop)
			if jc != nil {
				if jerr := jc.Sync(); jerr != nil {
					fmt.Fprintf(os.Stderr, "stage2 post-stop: %v\n", jerr)
				}
			}
		case "enter":
			cmd := args[2:]
			if len(cmd) > 0 && cmd[0] == "--" {
				cmd = cmd[1:]
			}
			if term, ok := os.LookupEnv("TERM"); ok {
				if _, set := app.Getenv("TERM"); !set {
					app.Environment = append(app.Environment, "TERM="+term)
				}
			}
			err = app.ExecAs(app.EnterCommand(cmd))
		default:
			err = fmt.Errorf("unknown command %q", verb)
		}
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "stage2: %v\n", err)
	var se *stage2.StartError
	if errors.As(err, &se) {
		return se.Code
	}
	return stage2.ExitConfig
}
