package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// Version is rkt's version. Clients (Nomad) require at least 1.27.0 and
// parse these lines with regular expressions, so their shape is fixed.
const (
	Version     = "1.31.0"
	AppcVersion = "0.8.11"
)

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(g)
		},
	}
}

func runVersion(g *globals) error {
	_, err := fmt.Fprintf(g.stdout, "rkt Version: %s\nappc Version: %s\nGo Version: %s\nGo OS/Arch: %s/%s\nFeatures: -TPM +SDJOURNAL\n",
		Version, AppcVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
