// Package store keeps images on disk: the content-addressed store of ACIs
// (uncompressed tars named by their image ID), their index (names, labels,
// times, remote-fetch records) and the tree store of rendered rootfs.
//
// Several rkt processes share one store. Nothing is held open between
// calls: the index database is opened (and so locked) around each
// transaction only, and files and trees appear by rename(2) of complete
// items built under tmp/, so a process killed at any moment leaves debris in
// tmp/ (removed by GC) but never a half-written listed image or tree.
// LAYOUT.md beside this file describes the directory.
package store

import (
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Version is the layout version written in the index and checked on Open.
const Version = 1

// Categories of store errors.
var (
	ErrNotFound   = errors.New("not found")
	ErrAmbiguous  = errors.New("ambiguous image ID prefix")
	ErrInvalidKey = errors.New("invalid image ID")
	// ErrLocked: another process kept the index locked past the timeout.
	ErrLocked = errors.New("store is locked by another rkt process")
	// ErrVersion: the store was written by an incompatible rkt.
	ErrVersion = errors.New("unsupported store version")
)

// Names below the store directory.
const (
	blobDir   = "blob"
	dbDir     = "db"
	dbFile    = "index.db"
	treeDir   = "tree"
	tmpDir    = "tmp"
	keyPrefix = "sha512-"
	doneFile  = "done"
)

// DefaultLockTimeout is how long an index transaction waits for another
// process to release the database.
const DefaultLockTimeout = 30 * time.Second

// Store is the image store in one directory (<data dir>/cas). Its methods
// are safe for concurrent use by goroutines and by other processes.
type Store struct {
	dir string
	// LockTimeout bounds the wait for the index lock (DefaultLockTimeout).
	LockTimeout time.Duration
	// Limits bound what one image may cost; zero fields take the defaults.
	Limits Limits
	// dbMu spares goroutines of one process from polling each other's
	// flock (bolt retries every 50 ms): they queue here instead.
	dbMu sync.RWMutex
}

// Open opens the store in dir (<data dir>/cas), creating its layout when
// missing, and checks its version.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", dir, err)
	}
	s := &Store{dir: abs, LockTimeout: DefaultLockTimeout}
	for _, d := range []string{filepath.Join(blobDir, "sha512"), dbDir, treeDir} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return nil, fmt.Errorf("opening store %s: %w", abs, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o700); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", abs, err)
	}
	// Every rkt command opens the store: check it read-only (no lock held
	// against others, no fsync), and write only to create the index.
	// (bolt cannot open a missing or empty file read-only.)
	err = errNeedInit
	if fi, serr := os.Stat(s.dbPath()); serr == nil && fi.Size() > 0 {
		err = s.view(checkIndex)
	}
	if errors.Is(err, errNeedInit) {
		err = s.update(false, initIndex)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", abs, err)
	}
	return s, nil
}

// Close releases the store. Nothing is held between calls, so it only
// exists for symmetry and future use.
func (s *Store) Close() error { return nil }

// Dir is the store directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) dbPath() string { return filepath.Join(s.dir, dbDir, dbFile) }

func (s *Store) openDB(readOnly bool) (*bolt.DB, error) {
	timeout := s.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	db, err := bolt.Open(s.dbPath(), 0o644, &bolt.Options{Timeout: timeout, ReadOnly: readOnly, NoFreelistSync: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("opening index %s (waited %v): %w", s.dbPath(), timeout, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("opening index %s: %w", s.dbPath(), err)
	}
	return db, nil
}

// view runs fn in a read-only transaction, holding the index (shared) only
// for its duration.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	db, err := s.openDB(true)
	if err != nil {
		return err
	}
	err = db.View(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing index: %w", cerr)
	}
	return err
}

// update runs fn in a read-write transaction, holding the index
// exclusively for its duration. Without sync the commit is not fsync'ed:
// for records whose loss on power failure costs nothing (last-use times).
func (s *Store) update(noSync bool, fn func(*bolt.Tx) error) error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	db, err := s.openDB(false)
	if err != nil {
		return err
	}
	db.NoSync = noSync
	err = db.Update(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing index: %w", cerr)
	}
	return err
}

// HashToKey is the image ID of the data hashed by h (a sha512).
func (s *Store) HashToKey(h hash.Hash) string {
	return keyPrefix + hex.EncodeToString(h.Sum(nil))
}

func newHash() hash.Hash { return sha512.New() }

// checkKey normalises an image ID or ID prefix ("sha512-" and at least two
// hex digits).
func checkKey(key string) (string, error) {
	k := strings.ToLower(key)
	hexPart, ok := strings.CutPrefix(k, keyPrefix)
	if !ok || len(hexPart) < 2 || len(hexPart) > sha512.Size*2 {
		return "", fmt.Errorf("image ID %q: want sha512- and 2 to 128 hex digits: %w", key, ErrInvalidKey)
	}
	if strings.Trim(hexPart, "0123456789abcdef") != "" {
		return "", fmt.Errorf("image ID %q: not hexadecimal: %w", key, ErrInvalidKey)
	}
	return k, nil
}

func isFullKey(k string) bool { return len(k) == len(keyPrefix)+sha512.Size*2 }

func (s *Store) blobPath(id string) string {
	return filepath.Join(s.dir, blobDir, "sha512", id[len(keyPrefix):len(keyPrefix)+2], id)
}
