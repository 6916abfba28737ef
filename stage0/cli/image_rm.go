package cli

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"
)

func newImageRmCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm IMAGE...",
		Short: "Remove one or more images with the given IDs or image names from the local store",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageRm(g, args)
		},
	}
}

func runImageRm(g *globals, args []string) error {
	st, err := g.openStore()
	if err != nil {
		return err
	}
	inUse, active, err := podTrees(g)
	if err != nil {
		return err
	}
	imgsInUse := imagesOfTrees(st, active)
	var errs *multierror.Error
	removed := 0
	// All arguments are resolved before any image goes: a hand-over to
	// rkt-fetch (a docker name) runs the command again from the start.
	resolved := make([]string, len(args))
	resolveErrs := make([]error, len(args))
	for i, a := range args {
		resolved[i], resolveErrs[i] = resolveStored(st, a)
		if _, ok := asHandOver(resolveErrs[i]); ok {
			return resolveErrs[i]
		}
	}
	for i := range args {
		key, err := resolved[i], resolveErrs[i]
		if err == nil && imgsInUse[key] {
			err = fmt.Errorf("image %s is used by a prepared or running pod (remove the pod first): %w", shortImageID(key, 32), errImageInUse)
		} else if err == nil {
			if err = st.Remove(key, keys(inUse)...); err != nil {
				err = fmt.Errorf("removing image %s: %w", shortImageID(key, 32), err)
			}
		}
		if err != nil {
			errs = appendErr(errs, err)
			continue
		}
		removed++
		fmt.Fprintf(g.stdout, "successfully removed aci for image: %q\n", key)
	}
	if err := removeUnusedTrees(g, st, inUse); err != nil {
		errs = appendErr(errs, err)
	}
	if err := g.pruneDockerLayers(st); err != nil {
		errs = appendErr(errs, err)
	}
	printRemoved(g, "image rm", removed)
	return errs.ErrorOrNil()
}

// printRemoved prints rkt's summary of image rm and image gc on stderr.
// rkt's "N image(s) cannot be removed" is left to the error line, which
// names each image.
func printRemoved(g *globals, cmd string, removed int) {
	if removed > 0 {
		fmt.Fprintf(g.stderr, "rkt %s: %d image(s) successfully removed\n", cmd, removed)
	}
}

var errImageInUse = errors.New("image in use")
