package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func newImageExportCommand(g *globals) *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "export IMAGE OUTPUT_ACI_FILE",
		Short: "Export a stored image to an ACI file",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageExport(g, args[0], args[1], overwrite)
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "overwrite output ACI")
	return cmd
}

// runImageExport writes the stored (uncompressed) ACI: its sha512 is the
// image ID, so the file re-imports as the same image.
func runImageExport(g *globals, image, out string, overwrite bool) error {
	st, err := g.openStore()
	if err != nil {
		return err
	}
	key, err := resolveStored(st, image)
	if err != nil {
		return err
	}
	rc, err := st.ReadStream(key)
	if err != nil {
		return fmt.Errorf("reading image %s: %w", key, err)
	}
	defer rc.Close()
	return writeACIFile(out, overwrite, func(w *os.File) error {
		_, err := io.Copy(w, rc)
		return err
	})
}
