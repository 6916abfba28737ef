package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/stage0/launch"
)

type stopFlags struct {
	Force    bool
	UUIDFile string
}

func newStopCommand(g *globals) *cobra.Command {
	var f stopFlags
	cmd := &cobra.Command{
		Use:   "stop --uuid-file=FILE | UUID ...",
		Short: "Stop one or more pods",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStop(g, f, args)
		},
	}
	cmd.Flags().BoolVar(&f.Force, "force", false, "forced stopping")
	cmd.Flags().StringVar(&f.UUIDFile, "uuid-file", "", "read pod UUID from file instead of argument")
	return cmd
}

func runStop(g *globals, f stopFlags, args []string) error {
	return forEachPod(g, f.UUIDFile, args, func(g *globals, uuidFile, arg string) error {
		return stopOne(g, f, arg)
	})
}

func stopOne(g *globals, f stopFlags, arg string) error {
	p, err := g.loadPod(arg, f.UUIDFile)
	if err != nil {
		return err
	}
	defer p.Close()
	switch st := p.State(); {
	case st.AfterRun():
		// A unit's ExecStop= must not fail when the pod ended first: rkt
		// said so and exited 0.
		_, err = fmt.Fprintf(g.stdout, "pod %q is already stopped\n", p.UUID.String())
		return err
	case st != pod.Running:
		return fmt.Errorf("pod %s is %s, not running: %w", p.UUID, st, pod.ErrBadState)
	}
	if err := launch.CallStop(p.Path(), p.UUID.String(), f.Force, g.stderr); err != nil {
		return fmt.Errorf("stopping pod %s: %w", p.UUID, err)
	}
	_, err = fmt.Fprintf(g.stdout, "%q\n", p.UUID.String())
	return err
}
