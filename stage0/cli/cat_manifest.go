package cli

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

type catManifestFlags struct {
	PrettyPrint bool
	UUIDFile    string
}

func newCatManifestCommand(g *globals) *cobra.Command {
	var f catManifestFlags
	cmd := &cobra.Command{
		Use:   "cat-manifest --uuid-file=FILE | UUID",
		Short: "Inspect and print the pod manifest",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCatManifest(g, f, firstArg(args))
		},
	}
	cmd.Flags().BoolVar(&f.PrettyPrint, "pretty-print", true, "apply indent to format the output")
	cmd.Flags().StringVar(&f.UUIDFile, "uuid-file", "", "read pod UUID from file instead of argument")
	return cmd
}

func runCatManifest(g *globals, f catManifestFlags, arg string) error {
	p, err := g.loadPod(arg, f.UUIDFile)
	if err != nil {
		return err
	}
	defer p.Close()
	_, raw, err := p.Manifest()
	if err != nil {
		return fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	return printRawJSON(g, raw, f.PrettyPrint)
}

func printRawJSON(g *globals, raw []byte, pretty bool) error {
	var buf bytes.Buffer
	var err error
	if pretty {
		err = json.Indent(&buf, raw, "", "\t")
	} else {
		err = json.Compact(&buf, raw)
	}
	if err != nil {
		return fmt.Errorf("formatting manifest: %w", err)
	}
	buf.WriteByte('\n')
	_, err = g.stdout.Write(buf.Bytes())
	return err
}
