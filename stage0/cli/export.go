package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/spf13/cobra"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/stage0/launch"
)

type exportFlags struct {
	App       string
	Overwrite bool
}

func newExportCommand(g *globals) *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "export [--app=APPNAME] UUID OUTPUT_ACI_FILE",
		Short: "Export an app from an exited pod to an ACI file",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExport(g, f, args[0], args[1])
		},
	}
	cmd.Flags().StringVar(&f.App, "app", "", "name of the app to export within the specified pod")
	cmd.Flags().BoolVar(&f.Overwrite, "overwrite", false, "overwrite output ACI")
	return cmd
}

func acName(s string) types.ACName { return types.ACName(s) }

// runExport packs an app's rootfs, with the changes the app made, as an
// ACI. The pod must have exited so that the rootfs is not changing.
func runExport(g *globals, f exportFlags, uuid, out string) error {
	p, err := g.loadPod(uuid, "")
	if err != nil {
		return err
	}
	defer p.Close()
	if st := p.State(); st != pod.Exited {
		return fmt.Errorf("pod %s is %s: only exited pods can be exported: %w", p.UUID, st, pod.ErrBadState)
	}
	pm, _, err := p.Manifest()
	if err != nil {
		return err
	}
	app := f.App
	if app == "" {
		if len(pm.Apps) != 1 {
			return usageErrorf("pod %s has %d apps: choose one with --app", p.UUID, len(pm.Apps))
		}
		app = pm.Apps[0].Name.String()
	}
	if pm.Apps.Get(acName(app)) == nil {
		return fmt.Errorf("pod %s has no app %q: %w", p.UUID, app, pod.ErrNotFound)
	}
	b, err := os.ReadFile(pod.AppImageManifestPath(p.Path(), app))
	if err != nil {
		return fmt.Errorf("pod %s: reading image manifest of app %s: %w", p.UUID, app, err)
	}
	var im schema.ImageManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return fmt.Errorf("pod %s: image manifest of app %s: %w", p.UUID, app, err)
	}
	rootfs := pod.AppRootfsPath(p.Path(), app)
	st, err := g.openStore()
	if err != nil {
		return err
	}
	var apps []string
	for _, a := range pm.Apps {
		apps = append(apps, a.Name.String())
	}
	unmount, err := launch.EnsureMounted(p.Path(), st.TreeRootfs, apps)
	if err != nil {
		return err
	}
	defer unmount()
	// Dependencies are already rendered into the rootfs: the exported image
	// stands alone.
	im.Dependencies = nil
	im.PathWhitelist = nil
	return writeACIFile(out, f.Overwrite, func(w *os.File) error {
		return acibuild.BuildFromDir(w, &im, rootfs, acibuild.PreserveOwner())
	})
}

// writeACIFile writes an ACI through a temporary file renamed into place,
// so that a failed or killed export leaves no partial file at out.
func writeACIFile(out string, overwrite bool, write func(*os.File) error) error {
	if _, err := os.Lstat(out); err == nil && !overwrite {
		return existsError{out}
	}
	tmp, err := os.CreateTemp(filepath.Dir(absPath(out)), ".rkt-export-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}
