package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/common/pod"
)

func newRmCommand(g *globals) *cobra.Command {
	var uuidFile string
	cmd := &cobra.Command{
		Use:   "rm --uuid-file=FILE | UUID ...",
		Short: "Remove all files and resources associated with an exited pod",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRm(g, uuidFile, args)
		},
	}
	cmd.Flags().StringVar(&uuidFile, "uuid-file", "", "read pod UUID from file instead of argument")
	return cmd
}

func runRm(g *globals, uuidFile string, args []string) error {
	return forEachPod(g, uuidFile, args, rmOne)
}

func rmOne(g *globals, uuidFile, arg string) error {
	p, err := g.loadPod(arg, uuidFile)
	if err != nil {
		return err
	}
	defer p.Close()
	switch p.State() {
	case pod.Exited:
		err = p.ToExitedGarbage()
	case pod.Prepared, pod.AbortedPrepare:
		err = p.ToGarbage()
	case pod.ExitedGarbage, pod.Garbage:
	default:
		return fmt.Errorf("cannot remove pod %s: it is %s: %w", p.UUID, p.State(), pod.ErrBadState)
	}
	if err != nil {
		return fmt.Errorf("removing pod %s: %w", p.UUID, err)
	}
	if err := deletePod(g, p); err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.stdout, "%q\n", p.UUID.String())
	return err
}
