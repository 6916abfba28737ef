package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/aci/migrate"
	"github.com/rktng/rkt/aci/store"
)

// imageMigrateFlags are the flags of `rkt image migrate`.
type imageMigrateFlags struct {
	dryRun    bool
	removeOld bool
}

func newImageMigrateCommand(g *globals) *cobra.Command {
	var f imageMigrateFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the image store rkt 1.30 left in --dir into this rkt's (done on first use too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runImageMigrate(g, f)
		},
	}
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "only report what would be migrated")
	cmd.Flags().BoolVar(&f.removeOld, "remove-old", false, "then remove rkt 1.30's store files (no rollback to rkt 1.30's images afterwards)")
	return cmd
}

func runImageMigrate(g *globals, f imageMigrateFlags) error {
	if f.dryRun && f.removeOld {
		return usageErrorf("--dry-run and --remove-old exclude each other")
	}
	cas := filepath.Join(g.Dir, "cas")
	s, err := store.Open(cas)
	if err != nil {
		return fmt.Errorf("opening image store in %s: %w", g.Dir, err)
	}
	if !migrate.Pending(cas) && !f.dryRun {
		fmt.Fprintf(g.stdout, "no rkt 1.30 image store to migrate in %s\n", cas)
	} else if err := g.migrateStore(s, migrate.Options{DryRun: f.dryRun}, true); err != nil {
		return err
	}
	if f.removeOld {
		return g.removeOldStore(cas)
	}
	return nil
}

// migrateStore migrates rkt 1.30's store into s and says so: image by
// image on stdout when asked for (`image migrate`), else one line on
// stderr, since the command that triggered it has its own output.
func (g *globals) migrateStore(s *store.Store, opts migrate.Options, verbose bool) error {
	rep, err := migrate.Migrate(s, s.Dir(), opts)
	if err != nil {
		return fmt.Errorf("migrating rkt 1.30's image store in %s: %w", g.Dir, err)
	}
	if verbose {
		rep.Write(g.stdout)
		return nil
	}
	for _, im := range rep.Images {
		if im.Skipped != "" {
			g.warnf("rkt 1.30 image %s (%s) not migrated: %s", im.OldKey, im.Name, im.Skipped)
		}
	}
	fmt.Fprintf(g.stderr, "rkt: %s\n", rep.Summary())
	return nil
}

// removeOldStore removes what rkt 1.30's store kept once it is migrated,
// except the rendered trees its pods still use.
func (g *globals) removeOldStore(cas string) error {
	inUse, _, err := podTrees(g)
	if err != nil {
		return err
	}
	n, err := migrate.RemoveOld(cas, inUse)
	if n > 0 {
		fmt.Fprintf(g.stdout, "removed %d files and directories of rkt 1.30's image store\n", n)
	}
	if err != nil {
		return fmt.Errorf("removing rkt 1.30's image store in %s: %w", cas, err)
	}
	return nil
}
