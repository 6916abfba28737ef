// Package migrate brings the image store that rkt 1.30 left in a data
// directory into ours: each image of its index (cas/db/ql.db, a ql
// database read with modernc.org/ql) is adopted with its name, import time,
// last use and size, and its remote-fetch records (ETag, max-age) are
// carried over.
//
// rkt 1.30's files are only read: its blobs are hard-linked into our
// store, its database is read from a copy, and nothing of its is changed or
// removed until RemoveOld, so a host can go back to rkt 1.30 at any time.
// Each step is idempotent and the migration is recorded as done (a marker
// beside ql.db) only after its last step, so a migration killed at any
// point leaves rkt 1.30's store intact and is finished by the next run.
package migrate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/aci/store"
)

// Names in rkt 1.30's store (<data dir>/cas), from its store/imagestore.
const (
	qlDBFile      = "db/ql.db"
	blobDir       = "blob/sha512"
	manifestDir   = "imageManifest/sha512"
	markerFile    = "db/ql.db.migrated"
	keyHexDigits  = 64 // rkt 1.30's keys: "sha512-" and 64 hex digits
	legacyPrefix  = "sha512-"
	schemaVersion = 7
)

// DefaultLockTimeout bounds the wait for a running rkt 1.30 to release its
// store.
const DefaultLockTimeout = 30 * time.Second

// Categories of migration errors.
var (
	// ErrLocked: a rkt 1.30 process kept its store open past the timeout.
	ErrLocked = errors.New("rkt 1.30's store is in use by a running rkt 1.30 process")
	// ErrSchema: ql.db is not the schema version this migration reads.
	ErrSchema = errors.New("unsupported rkt 1.30 store schema")
)

// Options qualify a migration.
type Options struct {
	// DryRun reads rkt 1.30's store and reports what would be migrated,
	// writing nothing.
	DryRun bool
	// LockTimeout bounds the wait for rkt 1.30's store lock
	// (DefaultLockTimeout when zero).
	LockTimeout time.Duration
}

// Image is one image of rkt 1.30's store and what became of it.
type Image struct {
	OldKey     string // rkt 1.30's key, "sha512-" and 64 hex digits
	ID         string // our full image ID (empty in a dry run or when skipped)
	Name       string
	ImportTime time.Time
	LastUsed   time.Time
	Size       int64
	Skipped    string // why the image was not migrated, if it was not
}

// Report says what a migration did (or, dry, would do).
type Report struct {
	Dir     string // rkt 1.30's store directory (<data dir>/cas)
	DryRun  bool
	Images  []Image
	Remotes int // remote-fetch records carried over
}

// Migrated counts the images adopted (or that would be).
func (r *Report) Migrated() int {
	n := 0
	for _, im := range r.Images {
		if im.Skipped == "" {
			n++
		}
	}
	return n
}

// Summary is the one-line account of the migration printed by every
// command that triggers it.
func (r *Report) Summary() string {
	verb := "migrated"
	if r.DryRun {
		verb = "would migrate"
	}
	s := fmt.Sprintf("rkt 1.30's image store in %s: %s %d of %d images and %d remote records",
		r.Dir, verb, r.Migrated(), len(r.Images), r.Remotes)
	if !r.DryRun {
		s += "; its files are kept for a rollback until `rkt image gc` (or `rkt image migrate --remove-old`) removes them"
	}
	return s
}

// Write prints one line per image, then the summary.
func (r *Report) Write(w io.Writer) {
	for _, im := range r.Images {
		switch {
		case im.Skipped != "":
			fmt.Fprintf(w, "skipped %s %s: %s\n", im.OldKey, im.Name, im.Skipped)
		case r.DryRun:
			fmt.Fprintf(w, "would migrate %s %s (%d bytes)\n", im.OldKey, im.Name, im.Size)
		default:
			fmt.Fprintf(w, "migrated %s %s -> %s\n", im.OldKey, im.Name, im.ID)
		}
	}
	fmt.Fprintln(w, r.Summary())
}

// Pending tells, at the cost of one stat (and, on a host rkt 1.30 used,
// the read of a small marker), whether casDir holds a rkt 1.30 store not
// yet migrated, or changed by rkt 1.30 since it was.
func Pending(casDir string) bool {
	fi, err := os.Stat(filepath.Join(casDir, qlDBFile))
	if err != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(casDir, markerFile))
	return err != nil || strings.TrimSpace(string(b)) != stamp(fi)
}

// stamp identifies a version of ql.db: rkt 1.30 rewrites it on every
// change, so a new size or mtime means new records to bring over.
func stamp(fi os.FileInfo) string {
	return strconv.FormatInt(fi.Size(), 10) + " " + strconv.FormatInt(fi.ModTime().UnixNano(), 10)
}

// Migrate adopts every image of the rkt 1.30 store in casDir into st and
// carries over its remote records, holding rkt 1.30's store lock
// exclusively throughout (as rkt 1.30's own migrations did), so that no
// rkt 1.30 process changes it meanwhile.
func Migrate(st *store.Store, casDir string, opts Options) (*Report, error) {
	rep := &Report{Dir: casDir, DryRun: opts.DryRun}
	unlock, err := lockStore(casDir, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer unlock()
	crashPoint("locked")

	fi, err := os.Stat(filepath.Join(casDir, qlDBFile))
	if err != nil {
		return nil, fmt.Errorf("migrating rkt 1.30's store in %s: %w", casDir, err)
	}
	idx, err := readIndex(casDir, filepath.Join(st.Dir(), "tmp"))
	if err != nil {
		return nil, fmt.Errorf("migrating rkt 1.30's store in %s: %w", casDir, err)
	}
	crashPoint("read")

	newID := map[string]string{} // old key -> our ID
	for i, rec := range idx.images {
		im := Image{OldKey: rec.key, Name: rec.name, ImportTime: rec.importTime, LastUsed: rec.lastUsed, Size: rec.size}
		im.ID, im.Skipped = adoptOne(st, casDir, rec, opts.DryRun)
		if im.ID != "" {
			newID[rec.key] = im.ID
		}
		rep.Images = append(rep.Images, im)
		crashPoint("image-" + strconv.Itoa(i+1))
	}
	for _, r := range idx.remotes {
		id, ok := newID[r.BlobKey]
		if !ok && !opts.DryRun {
			continue // its image was skipped
		}
		rep.Remotes++
		if opts.DryRun {
			continue
		}
		r.BlobKey = id
		if err := st.SetRemote(&r); err != nil {
			return rep, fmt.Errorf("migrating remote record of %s: %w", r.URL, err)
		}
	}
	crashPoint("remotes")
	if opts.DryRun {
		return rep, nil
	}
	if err := writeMarker(casDir, fi); err != nil {
		return rep, err
	}
	crashPoint("done")
	return rep, nil
}

// adoptOne brings one image over; it returns our ID, or why it skipped it.
func adoptOne(st *store.Store, casDir string, rec imageRow, dry bool) (string, string) {
	blob := legacyPath(casDir, blobDir, rec.key)
	manifest, err := os.ReadFile(legacyPath(casDir, manifestDir, rec.key))
	if err != nil {
		return "", fmt.Sprintf("reading its manifest: %v", err)
	}
	if _, err := os.Stat(blob); err != nil {
		return "", fmt.Sprintf("reading its blob: %v", err)
	}
	if dry {
		return "", ""
	}
	info, err := st.Adopt(store.Adopted{
		Blob: blob, RawManifest: manifest,
		ImportTime: rec.importTime, LastUsed: rec.lastUsed, Latest: rec.latest,
	})
	if err != nil {
		return "", err.Error()
	}
	if !strings.HasPrefix(info.ID, rec.key) {
		// Not the image rkt 1.30 indexed (a damaged blob): keep it out of
		// the way rather than answer the old ID with another image.
		if rerr := st.Remove(info.ID); rerr != nil {
			return "", fmt.Sprintf("its blob hashes to %s, not its key (and removing it: %v)", info.ID, rerr)
		}
		return "", fmt.Sprintf("its blob hashes to %s, not its key", info.ID)
	}
	return info.ID, ""
}

// legacyPath is where rkt 1.30's diskv stores keep key: the first two hex
// digits name the directory.
func legacyPath(casDir, dir, key string) string {
	return filepath.Join(casDir, dir, key[len(legacyPrefix):len(legacyPrefix)+2], key)
}

func writeMarker(casDir string, fi os.FileInfo) error {
	p := filepath.Join(casDir, markerFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(stamp(fi)+"\n"), 0o644); err != nil {
		return fmt.Errorf("recording the migration in %s: %w", p, err)
	}
	if f, err := os.Open(tmp); err == nil {
		f.Sync()
		f.Close()
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("recording the migration in %s: %w", p, err)
	}
	return nil
}

// lockStore takes rkt 1.30's store lock (an flock on the cas directory,
// held shared by every rkt 1.30 process while it has the store open)
// exclusively, polling until timeout.
func lockStore(casDir string, timeout time.Duration) (func(), error) {
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	fd, err := unix.Open(casDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("locking rkt 1.30's store %s: %w", casDir, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			unix.Close(fd)
			return nil, fmt.Errorf("locking rkt 1.30's store %s: %w", casDir, err)
		}
		if time.Now().After(deadline) {
			unix.Close(fd)
			return nil, fmt.Errorf("locking rkt 1.30's store %s (waited %v): %w", casDir, timeout, ErrLocked)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// crashPoint kills the process at the named step when the test hook
// RKT_TEST_MIGRATE_KILL_AT names it: the functional tests check that a
// migration SIGKILLed there leaves a consistent store that a rerun
// completes.
func crashPoint(step string) {
	if os.Getenv("RKT_TEST_MIGRATE_KILL_AT") == step {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
