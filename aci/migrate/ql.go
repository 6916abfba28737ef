package migrate

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/common/libexec"
)

// imageRow is a row of rkt 1.30's aciinfo table.
type imageRow struct {
	key        string
	name       string
	importTime time.Time
	lastUsed   time.Time
	latest     bool
	size       int64
}

// legacyIndex is what rkt 1.30's ql.db holds that we carry over.
type legacyIndex struct {
	images  []imageRow
	remotes []store.Remote // BlobKey still rkt 1.30's key
}

// Dump is what the helper rkt-ql-dump (./rkt-ql-dump) prints, as JSON, of
// a rkt 1.30 ql.db: its schema version and, for version 7 only, the rows
// of its aciinfo and remote tables, unchecked (this package checks them).
//
// ql.db is read by a helper, not by rkt itself, so that modernc.org/ql,
// whose package initialisation cost every rkt command ~0.7 ms, is linked
// only into the program that runs once per migration.
type Dump struct {
	Version int64        `json:"version"`
	Images  []DumpImage  `json:"images,omitempty"`
	Remotes []DumpRemote `json:"remotes,omitempty"`
}

// DumpImage is a row of aciinfo. A column that is not of its type (NULL)
// is the zero value; a key that is not a string is printed with %v.
type DumpImage struct {
	Key        string    `json:"blobkey"`
	Name       string    `json:"name"`
	ImportTime time.Time `json:"importtime"`
	LastUsed   time.Time `json:"lastused"`
	Latest     bool      `json:"latest"`
	Size       int64     `json:"size"`
}

// DumpRemote is a row of remote.
type DumpRemote struct {
	URL          string    `json:"aciurl"`
	ETag         string    `json:"etag"`
	BlobKey      string    `json:"blobkey"`
	CacheMaxAge  int64     `json:"cachemaxage"`
	DownloadTime time.Time `json:"downloadtime"`
}

// HelperName is the helper's file name (found by common/libexec).
const HelperName = "rkt-ql-dump"

// ErrNoHelper: the helper that reads ql.db is not installed.
var ErrNoHelper = errors.New(HelperName + " not found (it is installed with rkt, in " + libexec.Dir + ")")

// helperPath overrides where the helper is looked for (tests).
var helperPath string

func findHelper() (string, error) {
	if helperPath != "" {
		if fi, err := os.Stat(helperPath); err == nil && fi.Mode().IsRegular() {
			return helperPath, nil
		}
	}
	p, err := libexec.Find(HelperName)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoHelper, err)
	}
	return p, nil
}

// readIndex reads rkt 1.30's ql.db from a copy made in a scratch
// directory under tmpDir: opening a ql database writes beside it (its
// write-ahead log, a lock file), and rkt 1.30's store must stay as it was.
// A non-empty write-ahead log (rkt 1.30 killed mid-commit) is copied too,
// so that ql recovers the copy as rkt 1.30 would have recovered the
// original.
func readIndex(casDir, tmpDir string) (*legacyIndex, error) {
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(tmpDir, "migrate-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(casDir, qlDBFile)
	dst := filepath.Join(work, filepath.Base(src))
	if err := copyPlain(src, dst); err != nil {
		return nil, fmt.Errorf("copying %s: %w", src, err)
	}
	if fi, err := os.Stat(walName(src)); err == nil && fi.Size() > 0 {
		if err := copyPlain(walName(src), walName(dst)); err != nil {
			return nil, fmt.Errorf("copying the write-ahead log of %s: %w", src, err)
		}
	}
	helper, err := findHelper()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", src, err)
	}
	cmd := exec.Command(helper, dst)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %s: %w", src, strings.TrimSpace(stderr.String()), err)
	}
	var d Dump
	if err := json.Unmarshal(out, &d); err != nil {
		return nil, fmt.Errorf("reading %s: output of %s: %w", src, helper, err)
	}
	idx, err := index(&d)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", src, err)
	}
	return idx, nil
}

// walName is where ql keeps the write-ahead log of the database in name:
// ql.WalName, which rkt does not link (TestWalName compares them).
func walName(name string) string {
	sum := sha1.Sum([]byte(filepath.Base(filepath.Clean(name))))
	return filepath.Join(filepath.Dir(name), "."+hex.EncodeToString(sum[:]))
}

// index checks a dump: rkt 1.30's schema, rkt 1.30's keys (they name
// files), remote records that name a URL.
func index(d *Dump) (*legacyIndex, error) {
	if d.Version != schemaVersion {
		return nil, fmt.Errorf("schema version %d, this rkt reads %d (rkt 1.30's): %w", d.Version, schemaVersion, ErrSchema)
	}
	idx := &legacyIndex{}
	for _, r := range d.Images {
		if !validKey(r.Key) {
			return nil, fmt.Errorf("aciinfo row with blob key %v: not a rkt 1.30 key", r.Key)
		}
		idx.images = append(idx.images, imageRow{key: r.Key, name: r.Name, importTime: r.ImportTime,
			lastUsed: r.LastUsed, latest: r.Latest, size: r.Size})
	}
	for _, r := range d.Remotes {
		if r.URL != "" && validKey(r.BlobKey) {
			idx.remotes = append(idx.remotes, store.Remote{URL: r.URL, ETag: r.ETag, BlobKey: r.BlobKey,
				CacheMaxAge: int(r.CacheMaxAge), DownloadTime: r.DownloadTime})
		}
	}
	return idx, nil
}

// validKey accepts rkt 1.30's blob keys only: they name files.
func validKey(k string) bool {
	if len(k) != len(legacyPrefix)+keyHexDigits || k[:len(legacyPrefix)] != legacyPrefix {
		return false
	}
	for _, c := range k[len(legacyPrefix):] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func copyPlain(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}
