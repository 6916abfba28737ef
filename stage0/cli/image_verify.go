package cli

import (
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
	return verifyImages(g, st, sigs, args)
}
