package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"

	"github.com/rktng/rkt/aci/migrate"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/common/pod"
)

func newImageGCCommand(g *globals) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Garbage collect local store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runImageGC(g, grace)
		},
	}
	cmd.Flags().DurationVar(&grace, "grace-period", 24*time.Hour, "duration to wait since an image was last used before removing it")
	return cmd
}

// runImageGC removes rendered trees no pod uses, images not used within the
// grace period (except those of existing pods), and the store's debris.
func runImageGC(g *globals, grace time.Duration) error {
	st, err := g.openStore()
	if err != nil {
		return err
	}
	inUse, _, err := podTrees(g)
	if err != nil {
		return err
	}
	imgsInUse := imagesOfTrees(st, inUse)
	var errs *multierror.Error
	infos, err := st.List()
	if err != nil {
		return fmt.Errorf("listing images: %w", err)
	}
	now := time.Now()
	removed := 0
	for _, i := range infos {
		last := i.LastUsed
		if last.IsZero() {
			last = i.ImportTime
		}
		if imgsInUse[i.ID] || now.Sub(last) < grace {
			continue
		}
		if err := st.Remove(i.ID, keys(inUse)...); err != nil {
			errs = appendErr(errs, fmt.Errorf("removing image %s: %w", shortImageID(i.ID, 32), err))
			continue
		}
		removed++
		fmt.Fprintf(g.stdout, "successfully removed aci for image: %q\n", i.ID)
	}
	printRemoved(g, "image gc", removed)
	if err := removeUnusedTrees(g, st, inUse); err != nil {
		errs = appendErr(errs, err)
	}
	if err := g.pruneDockerLayers(st); err != nil {
		errs = appendErr(errs, err)
	}
	if err := st.GC(0); err != nil {
		errs = appendErr(errs, fmt.Errorf("cleaning store debris: %w", err))
	}
	// Once migrated, rkt 1.30's store files are debris too (kept until now
	// for a rollback).
	if migrate.Migrated(st.Dir()) {
		if err := g.removeOldStore(st.Dir()); err != nil {
			errs = appendErr(errs, err)
		}
	}
	return errs.ErrorOrNil()
}

// podTrees lists the tree store IDs that pods on disk refer to (their
// rootfs may be overlays on top of them): all of them, and those of pods
// being prepared, prepared or running, in one pass over the pods.
func podTrees(g *globals) (all, active map[string]bool, err error) {
	pods, err := pod.List(g.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("listing pods: %w", err)
	}
	all, active = map[string]bool{}, map[string]bool{}
	for _, p := range pods {
		st := p.State()
		isActive := st == pod.Preparing || st == pod.Prepared || st == pod.Running
		dir := p.Path()
		ids := []string{readTrimmed(filepath.Join(dir, pod.Stage1TreeFile))}
		if entries, err := os.ReadDir(filepath.Join(dir, pod.AppsInfoDir)); err == nil {
			for _, e := range entries {
				ids = append(ids, readTrimmed(pod.AppTreeStoreIDPath(dir, e.Name())))
			}
		}
		for _, id := range ids {
			if id != "" {
				all[id] = true
				if isActive {
					active[id] = true
				}
			}
		}
		p.Close()
	}
	return all, active, nil
}

// imagesOfTrees lists the images rendered into the given trees (apps,
// their dependencies and stage1s): removing one would take its trees along.
func imagesOfTrees(st *store.Store, trees map[string]bool) map[string]bool {
	used := map[string]bool{}
	for t := range trees {
		ids, err := st.TreeImages(t)
		if err != nil {
			continue
		}
		for _, id := range ids {
			used[id] = true
		}
	}
	return used
}

func removeUnusedTrees(g *globals, st *store.Store, inUse map[string]bool) error {
	trees, err := st.ListTrees()
	if err != nil {
		return fmt.Errorf("listing rendered images: %w", err)
	}
	var errs *multierror.Error
	for _, t := range trees {
		if inUse[t] {
			continue
		}
		if err := st.RemoveTree(t); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = appendErr(errs, fmt.Errorf("removing rendered image %s: %w", t, err))
			continue
		}
		g.debugf("removed rendered image %s", t)
	}
	return errs.ErrorOrNil()
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
