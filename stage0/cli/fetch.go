package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

type fetchFlags struct {
	Signatures []string
	Full       bool
	PullPolicy string
	storeFlags
}

func newFetchCommand(g *globals) *cobra.Command {
	var f fetchFlags
	cmd := &cobra.Command{
		Use:   "fetch IMAGE_URL...",
		Short: "Fetch image(s) and store them in the local store",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFetch(g, f, args)
		},
	}
	addFetchFlags(cmd, &f)
	return cmd
}

func addFetchFlags(cmd *cobra.Command, f *fetchFlags) {
	cmd.Flags().StringArrayVar(&f.Signatures, "signature", nil, "local signature file to use in validating the preceding image")
	cmd.Flags().BoolVar(&f.Full, "full", false, "print the full image hash after fetching")
	cmd.Flags().StringVar(&f.PullPolicy, "pull-policy", "update", "when to fetch images: new, update or never")
	addDeprecatedStoreFlags(cmd.Flags(), &f.storeFlags)
}

// runFetch prints each image's ID on its own line, rkt's short form
// unless --full; clients take the last.
func runFetch(g *globals, f fetchFlags, args []string) error {
	if !fetching {
		// Even an image in the store: fetch's output is rkt-fetch's.
		return &handOverError{what: "fetch"}
	}
	if len(f.Signatures) > len(args) {
		return usageErrorf("more --signature flags than images")
	}
	policy, err := f.pullPolicy(f.PullPolicy)
	if err != nil {
		return err
	}
	st, err := g.openStore()
	if err != nil {
		return err
	}
	g.fetchOnly = true
	r, err := g.resolver(st, policy)
	if err != nil {
		return err
	}
	for i, a := range args {
		sig := ""
		if i < len(f.Signatures) {
			sig = f.Signatures[i]
		}
		key, err := r.Resolve(a, sig)
		if err != nil {
			return err
		}
		if !f.Full {
			key = shortImageID(key, 32)
		}
		if _, err := fmt.Fprintln(g.stdout, key); err != nil {
			return err
		}
	}
	return nil
}
