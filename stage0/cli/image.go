package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/stage0/images"
)

func newImageCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image [command]",
		Short: "Operate on image(s) in the local store",
	}
	var ff fetchFlags
	fetch := &cobra.Command{
		Use:   "fetch IMAGE_URL...",
		Short: "Fetch image(s) and store them in the local store",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFetch(g, ff, args)
		},
	}
	addFetchFlags(fetch, &ff)
	cmd.AddCommand(fetch, newImageListCommand(g), newImageRmCommand(g), newImageGCCommand(g),
		newImageExportCommand(g), newImageExtractCommand(g, "extract"), newImageExtractCommand(g, "render"),
		newImageCatManifestCommand(g), newImageMigrateCommand(g))
	for _, c := range extraImageCommands {
		cmd.AddCommand(c(g))
	}
	return cmd
}

// extraImageCommands lets other files add image subcommands (verify).
var extraImageCommands []func(*globals) *cobra.Command

// resolveStored finds a stored image by ID, ID prefix or name.
func resolveStored(st *store.Store, arg string) (string, error) {
	if strings.HasPrefix(arg, "sha512-") {
		key, err := st.ResolveKey(arg)
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("image %q: %w", arg, store.ErrNotFound)
		}
		return key, err // the store's other errors name the image
	}
	if name, labels, err := images.ParseName(arg); err == nil {
		if key, err := st.GetACI(name, labels); err == nil {
			return key, nil
		}
	}
	if key, ok, err := dockerStored(st, arg); err != nil || ok {
		return key, err
	}
	infos, err := st.FindByName(arg)
	if err == nil && len(infos) > 0 {
		latest := infos[0]
		for _, i := range infos[1:] {
			if i.ImportTime.After(latest.ImportTime) {
				latest = i
			}
		}
		return latest.ID, nil
	}
	return "", fmt.Errorf("image %q: %w", arg, store.ErrNotFound)
}

func newImageCatManifestCommand(g *globals) *cobra.Command {
	var pretty bool
	cmd := &cobra.Command{
		Use:   "cat-manifest IMAGE",
		Short: "Inspect and print the image manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore()
			if err != nil {
				return err
			}
			key, err := resolveStored(st, args[0])
			if err != nil {
				return err
			}
			im, err := st.GetImageManifest(key)
			if err != nil {
				return fmt.Errorf("image %s: %w", key, err)
			}
			raw, err := im.MarshalJSON()
			if err != nil {
				return err
			}
			return printRawJSON(g, raw, pretty)
		},
	}
	cmd.Flags().BoolVar(&pretty, "pretty-print", true, "apply indent to format the output")
	return cmd
}
