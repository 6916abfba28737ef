// Command rkt-ql-dump prints, as JSON (migrate.Dump), what rkt's migration
// of a rkt 1.30 image store needs from rkt 1.30's index, cas/db/ql.db: its
// schema version and the rows of its aciinfo and remote tables.
//
//	rkt-ql-dump PATH-TO-A-COPY-OF-ql.db
//
// aci/migrate runs it on a copy (opening a ql database writes beside it).
// It is a program of its own so that modernc.org/ql, which reads that
// database, is not linked into rkt: its package initialisation cost every
// rkt command ~0.7 ms, for a migration that runs once per host.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"modernc.org/ql"

	"github.com/rktng/rkt/aci/migrate"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: rkt-ql-dump PATH-TO-ql.db")
		os.Exit(2)
	}
	d, err := dump(os.Args[1])
	if err == nil {
		err = json.NewEncoder(os.Stdout).Encode(d)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rkt-ql-dump: %v\n", err)
		os.Exit(1)
	}
}

// rkt 1.30's schema version, the only one whose tables are read.
const schemaVersion = 7

func dump(path string) (*migrate.Dump, error) {
	db, err := ql.OpenFile(path, &ql.Options{RemoveEmptyWAL: true})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	d := &migrate.Dump{Version: -1}
	err = each(db, "SELECT version FROM version", func(r []interface{}) error {
		v, ok := r[0].(int64)
		if !ok {
			return fmt.Errorf("version is %T", r[0])
		}
		d.Version = v
		return nil
	})
	if err != nil || d.Version != schemaVersion {
		return d, err
	}
	err = each(db, "SELECT blobkey, name, importtime, lastused, latest, size FROM aciinfo ORDER BY importtime",
		func(r []interface{}) error {
			var im migrate.DumpImage
			var ok bool
			if im.Key, ok = r[0].(string); !ok {
				im.Key = fmt.Sprint(r[0])
			}
			// NULL columns stay zero.
			im.Name, _ = r[1].(string)
			im.ImportTime, _ = r[2].(time.Time)
			im.LastUsed, _ = r[3].(time.Time)
			im.Latest, _ = r[4].(bool)
			im.Size, _ = r[5].(int64)
			d.Images = append(d.Images, im)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = each(db, "SELECT aciurl, etag, blobkey, cachemaxage, downloadtime FROM remote", func(r []interface{}) error {
		var rm migrate.DumpRemote
		rm.URL, _ = r[0].(string)
		rm.ETag, _ = r[1].(string)
		rm.BlobKey, _ = r[2].(string)
		rm.CacheMaxAge, _ = r[3].(int64)
		rm.DownloadTime, _ = r[4].(time.Time)
		d.Remotes = append(d.Remotes, rm)
		return nil
	})
	return d, err
}

// each runs a query and calls fn for every row.
func each(db *ql.DB, q string, fn func([]interface{}) error) error {
	rss, _, err := db.Run(ql.NewRWCtx(), q)
	if err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	for _, rs := range rss {
		err := rs.Do(false, func(r []interface{}) (bool, error) {
			return true, fn(r)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}
