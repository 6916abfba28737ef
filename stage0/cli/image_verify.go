package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func init() {
	extraImageCommands = append(extraImageCommands, newImageVerifyCommand)
}

func newImageVerifyCommand(g *globals) *cobra.Command {
	var sigs []string
	cmd := &cobra.Command{
		Use:   "verify IMAGE...",
		Short: "Verify the signatures of images (files, URLs or names) against the trust store, storing nothing",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageVerify(g, sigs, args)
		},
	}
	cmd.Flags().StringArrayVar(&sigs, "signature", nil, "local signature file of the preceding image")
	return cmd
}

func runImageVerify(g *globals, sigs, args []string) error {
	st, err := g.openStore()
	if err != nil {
		return err
	}
	f, err := g.newFetcher(st, "new")
	if err != nil {
		return err
	}
	for i, a := range args {
		sig := ""
		if i < len(sigs) {
			sig = sigs[i]
		}
		v, err := f.VerifyImage(context.Background(), a, sig)
		if err != nil {
			return err
		}
		if v.Signer == nil {
			fmt.Fprintf(g.stdout, "%s: %s: signature not checked (--insecure-options=image)\n", a, v.Name)
			continue
		}
		fmt.Fprintf(g.stdout, "%s: %s: signed by %s\n", a, v.Name, v.Signer)
	}
	return nil
}
