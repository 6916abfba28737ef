package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/aci/archive"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/stage0/prepare"
)

type extractFlags struct {
	RootfsOnly bool
	Overwrite  bool
}

// newImageExtractCommand makes "extract" (the image's own files) and
// "render" (the image with its dependencies, as a pod sees it).
func newImageExtractCommand(g *globals, verb string) *cobra.Command {
	var f extractFlags
	short := "Extract a stored image to a directory"
	if verb == "render" {
		short = "Render a stored image, with its dependencies, to a directory"
	}
	cmd := &cobra.Command{
		Use:   verb + " IMAGE OUTPUT_DIR",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageExtract(g, f, verb == "render", args[0], args[1])
		},
	}
	cmd.Flags().BoolVar(&f.RootfsOnly, "rootfs-only", false, "extract rootfs only")
	cmd.Flags().BoolVar(&f.Overwrite, "overwrite", false, "overwrite output directory")
	return cmd
}

func runImageExtract(g *globals, f extractFlags, render bool, image, out string) error {
	st, err := g.openStore()
	if err != nil {
		return err
	}
	key, err := resolveStored(st, image)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(out); err == nil {
		if !f.Overwrite {
			return existsError{out}
		}
		if err := os.RemoveAll(out); err != nil {
			return fmt.Errorf("removing %s: %w", out, err)
		}
	}
	// Work in a sibling temporary directory renamed into place, so that a
	// failure leaves no half-extracted OUTPUT_DIR.
	tmp, err := os.MkdirTemp(filepath.Dir(absPath(out)), ".rkt-extract-*")
	if err != nil {
		return fmt.Errorf("extracting image %s: %w", key, err)
	}
	defer os.RemoveAll(tmp)
	dest := filepath.Join(tmp, "image")
	rootfs := filepath.Join(dest, "rootfs")
	if f.RootfsOnly {
		rootfs = dest
	}
	if err := extractImage(st, key, render, rootfs); err != nil {
		return fmt.Errorf("extracting image %s: %w", key, err)
	}
	if !f.RootfsOnly {
		im, err := st.GetImageManifest(key)
		if err != nil {
			return err
		}
		b, err := im.MarshalJSON()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dest, "manifest"), b, 0o644); err != nil {
			return fmt.Errorf("writing manifest: %w", err)
		}
	}
	if err := os.Rename(dest, out); err != nil {
		return fmt.Errorf("extracting image %s: %w", key, err)
	}
	return nil
}

func extractImage(st *store.Store, key string, render bool, rootfs string) error {
	if render {
		tree, err := st.RenderTree(key)
		if err != nil {
			return err
		}
		return prepare.CopyTree(st.TreeRootfs(tree), rootfs)
	}
	rc, err := st.ReadStream(key)
	if err != nil {
		return err
	}
	defer rc.Close()
	work := rootfs + ".x"
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if _, err := archive.Extract(rc, work, nil); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(work, "rootfs"), rootfs); err != nil {
		return err
	}
	return os.RemoveAll(work)
}
