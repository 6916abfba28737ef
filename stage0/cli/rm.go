package cli

import (
	"fmt"

	"github.com/hashicorp/go-multierror"
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
	if uuidFile != "" {
		if len(args) > 0 {
			return usageErrorf("give either UUIDs or --uuid-file, not both")
		}
		args = []string{""}
	}
	if len(args) == 0 {
		return usageErrorf("no pod UUID given")
	}
	var errs *multierror.Error
	for _, a := range args {
		if err := rmOne(g, a, uuidFile); err != nil {
			errs = appendErr(errs, err)
		}
	}
	return errs.ErrorOrNil()
}

func rmOne(g *globals, arg, uuidFile string) error {
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
