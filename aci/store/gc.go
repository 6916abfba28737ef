package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// work is a scratch directory under tmp/ for one operation in flight. It
// is flock'ed while the operation runs: GC removes only unlocked ones, and
// the kernel drops the lock of a killed process, so its debris is fair game.
type work struct {
	dir  string
	lock *os.File
}

func (s *Store) newWork(kind string) (*work, error) {
	for attempt := 0; ; attempt++ {
		dir, err := os.MkdirTemp(filepath.Join(s.dir, tmpDir), kind+"-")
		if err != nil {
			return nil, fmt.Errorf("creating scratch directory: %w", err)
		}
		// A GC may remove the directory between its creation and our
		// lock: make sure we locked the one still there, else retry.
		f, err := os.Open(dir)
		if err == nil {
			if err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
				fi, ferr := f.Stat()
				di, derr := os.Lstat(dir)
				if ferr == nil && derr == nil && os.SameFile(fi, di) {
					return &work{dir: dir, lock: f}, nil
				}
			}
			f.Close()
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.EWOULDBLOCK) && err != nil {
			return nil, fmt.Errorf("creating scratch directory: %w", err)
		}
		if attempt > 10 {
			return nil, fmt.Errorf("creating scratch directory in %s: raced with garbage collection", filepath.Join(s.dir, tmpDir))
		}
	}
}

func (w *work) path(name string) string { return filepath.Join(w.dir, name) }

// release removes the scratch directory, then drops its lock.
func (w *work) release() error {
	err := os.RemoveAll(w.dir)
	w.lock.Close()
	if err != nil {
		return fmt.Errorf("removing scratch directory: %w", err)
	}
	return nil
}

// gcTmp removes what is under tmp/, untouched for olderThan and not locked
// by a live operation.
func (s *Store) gcTmp(olderThan time.Duration) error {
	tmp := filepath.Join(s.dir, tmpDir)
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("listing %s: %w", tmp, err)
	}
	deadline := time.Now().Add(-olderThan)
	var errs []error
	for _, e := range entries {
		p := filepath.Join(tmp, e.Name())
		if err := removeIfStale(p, deadline); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeIfStale(p string, deadline time.Time) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		// Unreadable (a symlink to nowhere, say): judge by lstat alone.
		fi, lerr := os.Lstat(p)
		if lerr != nil || fi.ModTime().After(deadline) {
			return nil
		}
		return os.RemoveAll(p)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil // in use
	}
	fi, err := f.Stat()
	if err != nil || fi.ModTime().After(deadline) {
		return nil
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("removing debris %s: %w", p, err)
	}
	return nil
}

// GC removes debris: what crashed or killed operations left under tmp/,
// and blobs that no index entry lists (an import killed between storing the
// blob and indexing it), when untouched for olderThan. Live operations are
// never disturbed. Trees are left alone: which are in use is the pods'
// business (see RemoveTree).
func (s *Store) GC(olderThan time.Duration) error {
	errTmp := s.gcTmp(olderThan)
	deadline := time.Now().Add(-olderThan)
	// Under the index lock, so that no import is between renaming its blob
	// into place and indexing it.
	errBlobs := s.update(false, func(tx *bolt.Tx) error {
		images := tx.Bucket(bucketImages)
		root := filepath.Join(s.dir, blobDir, "sha512")
		dirs, err := os.ReadDir(root)
		if err != nil {
			return err
		}
		for _, d := range dirs {
			blobs, err := os.ReadDir(filepath.Join(root, d.Name()))
			if err != nil {
				continue
			}
			for _, b := range blobs {
				if !strings.HasPrefix(b.Name(), keyPrefix) || images.Get([]byte(b.Name())) != nil {
					continue
				}
				if fi, err := b.Info(); err == nil && fi.ModTime().Before(deadline) {
					os.Remove(filepath.Join(root, d.Name(), b.Name()))
				}
			}
		}
		return nil
	})
	if errBlobs != nil {
		errBlobs = fmt.Errorf("collecting unindexed blobs: %w", errBlobs)
	}
	return errors.Join(errTmp, errBlobs)
}
