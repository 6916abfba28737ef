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
	for _, a := range args {
		key, err := resolveStored(st, a)
		if err != nil {
			errs = appendErr(errs, err)
			continue
		}
		if imgsInUse[key] {
			errs = appendErr(errs, fmt.Errorf("image %s is used by a prepared or running pod (remove the pod first): %w", key, errImageInUse))
			continue
		}
		if err := st.Remove(key, keys(inUse)...); err != nil {
			errs = appendErr(errs, fmt.Errorf("removing image %s: %w", key, err))
			continue
		}
		fmt.Fprintf(g.stdout, "successfully removed aci for image: %q\n", key)
	}
	if err := removeUnusedTrees(g, st, inUse); err != nil {
		errs = appendErr(errs, err)
	}
	return errs.ErrorOrNil()
}

var errImageInUse = errors.New("image in use")
