package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/stage0/launch"
)

func newEnterCommand(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "enter [--app=APPNAME] UUID [CMD [ARGS ...]]",
		Short: "Enter the namespaces of an app within a rkt pod",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEnter(g, app, args[0], args[1:])
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&app, "app", "", "name of the app to enter within the specified pod")
	return cmd
}

func runEnter(g *globals, app, uuid string, cmd []string) error {
	p, err := g.loadPod(uuid, "")
	if err != nil {
		return err
	}
	defer p.Close()
	if p.State() != pod.Running {
		return fmt.Errorf("pod %s is %s, not running: %w", p.UUID, p.State(), pod.ErrBadState)
	}
	pm, _, err := p.Manifest()
	if err != nil {
		return err
	}
	if app == "" {
		if len(pm.Apps) != 1 {
			return usageErrorf("pod %s has %d apps: choose one with --app", p.UUID, len(pm.Apps))
		}
		app = pm.Apps[0].Name.String()
	} else if pm.Apps.Get(acName(app)) == nil {
		return fmt.Errorf("pod %s has no app %q: %w", p.UUID, app, pod.ErrNotFound)
	}
	if len(cmd) == 0 {
		cmd = []string{"/bin/bash"}
		if _, err := os.Lstat(filepath.Join(pod.AppRootfsPath(p.Path(), app), "bin", "bash")); err != nil {
			cmd = []string{"/bin/sh"}
		}
	}
	pid, err := p.PID()
	if err != nil {
		return fmt.Errorf("pod %s: finding its pid: %w", p.UUID, err)
	}
	code, err := launch.Enter(p.Path(), pid, app, cmd, launch.Stdio{In: g.stdin, Out: g.stdout, Err: g.stderr})
	if err != nil {
		return fmt.Errorf("entering pod %s: %w", p.UUID, err)
	}
	if code != 0 {
		return &exitCodeError{code}
	}
	return nil
}
