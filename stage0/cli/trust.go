package cli

import (
	"github.com/spf13/cobra"
)

func init() {
	extraCommands = append(extraCommands, newTrustCommand)
}

type trustFlags struct {
	Prefix                string
	Root                  bool
	SkipFingerprintReview bool
	InsecureAllowHTTP     bool
}

func newTrustCommand(g *globals) *cobra.Command {
	var f trustFlags
	cmd := &cobra.Command{
		Use:   "trust [--prefix=PREFIX] [--root] [--skip-fingerprint-review] [PUBKEY ...]",
		Short: "Trust a key for image verification",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrust(g, f, args)
		},
	}
	cmd.Flags().StringVar(&f.Prefix, "prefix", "", "prefix to limit trust to")
	cmd.Flags().BoolVar(&f.Root, "root", false, "add root key from filesystem without a prefix")
	cmd.Flags().BoolVar(&f.SkipFingerprintReview, "skip-fingerprint-review", false, "accept key without fingerprint confirmation")
	cmd.Flags().BoolVar(&f.InsecureAllowHTTP, "insecure-allow-http", false, "allow HTTP use for key discovery and/or retrieval")
	return cmd
}

// runTrust checks the flags; trustKeys (fetching.go) stores the keys.
func runTrust(g *globals, f trustFlags, keys []string) error {
	if f.Prefix == "" && !f.Root {
		return usageErrorf("--prefix or --root is required")
	}
	if f.Prefix != "" && f.Root {
		return usageErrorf("--prefix and --root cannot be used together")
	}
	if f.Root && len(keys) == 0 {
		return usageErrorf("--root needs key files or URLs")
	}
	return trustKeys(g, f, keys)
}
