package migrate

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"modernc.org/ql"

	"github.com/rktng/rkt/aci/store"
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
	if fi, err := os.Stat(ql.WalName(src)); err == nil && fi.Size() > 0 {
		if err := copyPlain(ql.WalName(src), ql.WalName(dst)); err != nil {
			return nil, fmt.Errorf("copying the write-ahead log of %s: %w", src, err)
		}
	}
	db, err := ql.OpenFile(dst, &ql.Options{RemoveEmptyWAL: true})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", src, err)
	}
	defer db.Close()
	idx, err := query(db)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", src, err)
	}
	return idx, nil
}

func query(db *ql.DB) (*legacyIndex, error) {
	var version int64 = -1
	err := each(db, "SELECT version FROM version", func(d []interface{}) error {
		v, ok := d[0].(int64)
		if !ok {
			return fmt.Errorf("version is %T", d[0])
		}
		version = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	if version != schemaVersion {
		return nil, fmt.Errorf("schema version %d, this rkt reads %d (rkt 1.30's): %w", version, schemaVersion, ErrSchema)
	}
	idx := &legacyIndex{}
	err = each(db, "SELECT blobkey, name, importtime, lastused, latest, size FROM aciinfo ORDER BY importtime",
		func(d []interface{}) error {
			var r imageRow
			var ok [6]bool
			r.key, ok[0] = d[0].(string)
			r.name, ok[1] = d[1].(string)
			r.importTime, ok[2] = d[2].(time.Time)
			r.lastUsed, ok[3] = d[3].(time.Time)
			r.latest, ok[4] = d[4].(bool)
			r.size, ok[5] = d[5].(int64)
			if !ok[0] || !validKey(r.key) {
				return fmt.Errorf("aciinfo row with blob key %v: not a rkt 1.30 key", d[0])
			}
			idx.images = append(idx.images, r) // NULL columns stay zero
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = each(db, "SELECT aciurl, etag, blobkey, cachemaxage, downloadtime FROM remote", func(d []interface{}) error {
		var r store.Remote
		r.URL, _ = d[0].(string)
		r.ETag, _ = d[1].(string)
		r.BlobKey, _ = d[2].(string)
		age, _ := d[3].(int64)
		r.CacheMaxAge = int(age)
		r.DownloadTime, _ = d[4].(time.Time)
		if r.URL != "" && validKey(r.BlobKey) {
			idx.remotes = append(idx.remotes, r)
		}
		return nil
	})
	return idx, err
}

// each runs a query and calls fn for every row.
func each(db *ql.DB, q string, fn func([]interface{}) error) error {
	rss, _, err := db.Run(ql.NewRWCtx(), q)
	if err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	for _, rs := range rss {
		err := rs.Do(false, func(d []interface{}) (bool, error) {
			return true, fn(d)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
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
