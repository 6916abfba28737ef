package migrate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNotMigrated: RemoveOld was asked to remove a store not (fully)
// migrated.
var ErrNotMigrated = errors.New("rkt 1.30's store is not migrated yet")

// Migrated tells whether casDir had a rkt 1.30 store, now migrated, whose
// files are still (partly) there.
func Migrated(casDir string) bool {
	_, err := os.Stat(filepath.Join(casDir, markerFile))
	return err == nil && !Pending(casDir)
}

// RemoveOld removes rkt 1.30's store files from casDir once it is
// migrated: its database, image manifests, locks, blobs (ours are other
// names, hard links of the same data) and the rendered trees that no pod
// in keepTrees uses. It returns how many entries it removed. The marker
// goes last, so an interrupted removal is finished by the next one.
func RemoveOld(casDir string, keepTrees map[string]bool) (int, error) {
	if !Migrated(casDir) {
		if _, err := os.Stat(filepath.Join(casDir, qlDBFile)); err != nil {
			return 0, nil // nothing of rkt 1.30's here
		}
		return 0, fmt.Errorf("%s: %w (run rkt image migrate first)", casDir, ErrNotMigrated)
	}
	unlock, err := lockStore(casDir, 0)
	if err != nil {
		return 0, err
	}
	defer unlock()
	var paths []string
	db := filepath.Join(casDir, qlDBFile)
	paths = append(paths, db, walName(db))
	paths = append(paths, legacyBlobs(casDir)...)
	trees, kept := legacyTrees(casDir, keepTrees)
	paths = append(paths, trees...)
	paths = append(paths, filepath.Join(casDir, "imageManifest"), filepath.Join(casDir, "imagelocks"))
	if !kept {
		paths = append(paths, filepath.Join(casDir, "treestorelocks"))
	}
	n := 0
	var errs []error
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if len(errs) == 0 {
		if err := os.Remove(filepath.Join(casDir, markerFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// legacyBlobs lists rkt 1.30's blob files: named by its 64-digit keys,
// where ours have 128 digits.
func legacyBlobs(casDir string) []string {
	var out []string
	root := filepath.Join(casDir, blobDir)
	dirs, _ := os.ReadDir(root)
	for _, d := range dirs {
		files, _ := os.ReadDir(filepath.Join(root, d.Name()))
		for _, f := range files {
			if validKey(f.Name()) {
				out = append(out, filepath.Join(root, d.Name(), f.Name()))
			}
		}
	}
	return out
}

// legacyTrees lists rkt 1.30's rendered trees (tree/<id> with its
// "rendered" marker, where ours have "done") that no kept pod uses, with
// their lock files; kept tells whether some are in use and stay.
func legacyTrees(casDir string, keep map[string]bool) (paths []string, kept bool) {
	root := filepath.Join(casDir, "tree")
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
			continue // ours
		}
		if _, err := os.Stat(filepath.Join(dir, "rendered")); err != nil {
			continue
		}
		if keep[e.Name()] {
			kept = true
			continue
		}
		paths = append(paths, dir, filepath.Join(casDir, "treestorelocks", e.Name()))
	}
	return paths, kept
}
