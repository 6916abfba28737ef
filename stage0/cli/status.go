package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage0/launch"
)

// waitFlag is rkt's --wait[=bool|duration]: a bare flag or true waits
// forever, false not at all, a duration at most that long.
type waitFlag struct {
	on  bool
	max time.Duration
}

func (w *waitFlag) String() string {
	if w.max > 0 {
		return w.max.String()
	}
	return strconv.FormatBool(w.on)
}
func (w *waitFlag) Type() string { return "bool|duration" }
func (w *waitFlag) Set(s string) error {
	if b, err := strconv.ParseBool(s); err == nil {
		w.on, w.max = b, 0
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("want a boolean or a duration, got %q", s)
	}
	w.on, w.max = d > 0, d
	return nil
}

type statusFlags struct {
	Wait, WaitReady waitFlag
	Format          string
	UUIDFile        string
}

func newStatusCommand(g *globals) *cobra.Command {
	var f statusFlags
	cmd := &cobra.Command{
		Use:   "status [--wait=bool|timeout] [--wait-ready=bool|timeout] --uuid-file=FILE | UUID",
		Short: "Check the status of a rkt pod",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(g, f, firstArg(args))
		},
	}
	cmd.Flags().Var(&f.Wait, "wait", "wait for the pod to exit (true, false, or a timeout)")
	cmd.Flags().Lookup("wait").NoOptDefVal = "true"
	cmd.Flags().Var(&f.WaitReady, "wait-ready", "wait for the pod to be running (true, false, or a timeout)")
	cmd.Flags().Lookup("wait-ready").NoOptDefVal = "true"
	cmd.Flags().StringVar(&f.Format, "format", "", "choose the output format: json, json-pretty")
	cmd.Flags().StringVar(&f.UUIDFile, "uuid-file", "", "read pod UUID from file instead of argument")
	return cmd
}

func firstArg(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return ""
}

func waitContext(w waitFlag) (context.Context, context.CancelFunc) {
	if w.max > 0 {
		return context.WithTimeout(context.Background(), w.max)
	}
	return context.WithCancel(context.Background())
}

func runStatus(g *globals, f statusFlags, arg string) error {
	if err := checkFormat(f.Format); err != nil {
		return err
	}
	p, err := g.loadPod(arg, f.UUIDFile)
	if err != nil {
		return err
	}
	defer p.Close()
	if f.WaitReady.on {
		ctx, cancel := waitContext(f.WaitReady)
		err := waitReady(ctx, p)
		cancel()
		if err != nil {
			return fmt.Errorf("waiting for pod %s to be ready: %w", p.UUID, err)
		}
	}
	if f.Wait.on {
		ctx, cancel := waitContext(f.Wait)
		err := p.WaitExited(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("waiting for pod %s to exit: %w", p.UUID, err)
		}
	}
	j := describePod(p, true)
	if f.Format != "" {
		return printJSON(g.stdout, j, f.Format)
	}
	return printStatusText(g.stdout, p.State(), j)
}

// printStatusText prints rkt's status lines: what a pod has in its state,
// nothing more (a prepared pod has only state= and created=), and the
// apps' exit codes once the pod has exited.
func printStatusText(w io.Writer, st pod.State, j podJSON) error {
	fmt.Fprintf(w, "state=%s\n", j.textState)
	fmt.Fprintf(w, "created=%s\n", humanTime(j.created, true))
	if !j.started.IsZero() {
		fmt.Fprintf(w, "started=%s\n", humanTime(j.started, true))
	}
	if st == pod.Running || st == pod.Exited {
		fmt.Fprintf(w, "networks=%s\n", netsString(j.Networks))
	}
	if st != pod.Running && !st.AfterRun() && st != pod.Deleting {
		return nil
	}
	if j.pid > 0 {
		fmt.Fprintf(w, "pid=%d\n", j.pid)
	}
	fmt.Fprintf(w, "exited=%t\n", j.exited)
	if st == pod.Running {
		return nil
	}
	apps := append([]appJSON(nil), j.Apps...)
	sort.Slice(apps, func(i, k int) bool { return apps[i].Name < apps[k].Name })
	for _, a := range apps {
		if a.ExitCode != nil {
			fmt.Fprintf(w, "app-%s=%d\n", a.Name, *a.ExitCode)
		}
	}
	return nil
}

// waitReady waits, as rkt did, until the pod runs and its stage1 has made
// rkt/supervisor-status -> ready (its apps are starting), and until it
// has said which pid to enter, so that enter works right after. Stage1s
// older than interface version 6 (rkt 1.30's fly) may never make the
// link: for them the pid alone says the pod is ready.
func waitReady(ctx context.Context, p *pod.Pod) error {
	_, version, _ := launch.Entrypoint(p.Path(), stage1.AnnRun)
	linked := version >= 6
	for {
		if err := p.Refresh(); err != nil {
			return err
		}
		switch st := p.State(); {
		case st == pod.Running && (!linked || p.SupervisorReady()):
			if _, err := p.PID(); err == nil {
				return nil
			}
		case st.AfterRun() || st == pod.Garbage || st == pod.Deleting || st == pod.AbortedPrepare:
			return fmt.Errorf("pod is %s: %w", st, pod.ErrBadState)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
