package migrate

import (
	"archive/tar"
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"modernc.org/ql"

	"github.com/rktng/rkt/aci/store"
)

// legacyImage writes an ACI (manifest only) into a rkt 1.30 store layout
// and returns its rkt 1.30 key.
func legacyImage(t *testing.T, cas, name string) (string, []byte) {
	t.Helper()
	manifest := []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"` + name +
		`","labels":[{"name":"version","value":"1.0.0"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}]}`)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(manifest)), Typeflag: tar.TypeReg})
	tw.Write(manifest)
	tw.WriteHeader(&tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir})
	tw.Close()
	sum := sha512.Sum512(buf.Bytes())
	full := "sha512-" + hex.EncodeToString(sum[:])
	key := full[:len(legacyPrefix)+keyHexDigits]
	for dir, data := range map[string][]byte{blobDir: buf.Bytes(), manifestDir: manifest} {
		p := legacyPath(cas, dir, key)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return key, buf.Bytes()
}

// legacyDB creates ql.db with rkt 1.30's schema (version 7) and rows.
func legacyDB(t *testing.T, cas string, stmts ...string) {
	t.Helper()
	os.MkdirAll(filepath.Join(cas, "db"), 0o755)
	db, err := ql.OpenFile(filepath.Join(cas, qlDBFile), &ql.Options{CanCreate: true, RemoveEmptyWAL: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	all := append([]string{
		"CREATE TABLE version (version int);",
		"INSERT INTO version VALUES (7);",
		"CREATE TABLE remote (aciurl string, sigurl string, etag string, blobkey string, cachemaxage int, downloadtime time);",
		"CREATE TABLE aciinfo (blobkey string, name string, importtime time, lastused time, latest bool, size int64 DEFAULT 0, treestoresize int64 DEFAULT 0);",
	}, stmts...)
	ctx := ql.NewRWCtx()
	if _, _, err := db.Run(ctx, "BEGIN TRANSACTION; "+strings.Join(all, " ")+" COMMIT;"); err != nil {
		t.Fatal(err)
	}
}

func newStore(t *testing.T, cas string) *store.Store {
	t.Helper()
	st, err := store.Open(cas)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMigrateImagesAndRemotes(t *testing.T) {
	cas := filepath.Join(t.TempDir(), "cas")
	k1, _ := legacyImage(t, cas, "example.com/one")
	k2, _ := legacyImage(t, cas, "example.com/two")
	legacyDB(t, cas,
		`INSERT INTO aciinfo VALUES ("`+k1+`", "example.com/one", parseTime("2006-01-02 15:04:05", "2020-02-01 10:00:00"), parseTime("2006-01-02 15:04:05", "2020-03-01 10:00:00"), true, 1024, 0);`,
		`INSERT INTO aciinfo VALUES ("`+k2+`", "example.com/two", parseTime("2006-01-02 15:04:05", "2020-02-02 10:00:00"), parseTime("2006-01-02 15:04:05", "2020-03-02 10:00:00"), false, 1024, 0);`,
		`INSERT INTO remote VALUES ("https://example.com/two.aci", "", "\"etag-2\"", "`+k2+`", 3600, parseTime("2006-01-02 15:04:05", "2020-02-02 10:00:00"));`,
	)
	oldFiles := snapshot(t, cas)
	if !Pending(cas) {
		t.Fatal("Pending: false before the migration")
	}
	st := newStore(t, cas)

	dry, err := Migrate(st, cas, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Migrated() != 2 || dry.Remotes != 1 {
		t.Fatalf("dry run: %+v", dry)
	}
	if l, _ := st.List(); len(l) != 0 || !Pending(cas) {
		t.Fatalf("dry run wrote: %v, pending %v", l, Pending(cas))
	}

	rep, err := Migrate(st, cas, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Migrated() != 2 || rep.Remotes != 1 || Pending(cas) {
		t.Fatalf("report %+v, pending %v", rep, Pending(cas))
	}
	info, err := st.Info(k1)
	if err != nil {
		t.Fatalf("old key %s: %v", k1, err)
	}
	if info.Name != "example.com/one" || !info.Latest || info.ImportTime.Year() != 2020 || info.LastUsed.Month() != 3 {
		t.Fatalf("info %+v", info)
	}
	r, err := st.GetRemote("https://example.com/two.aci")
	if err != nil || r.ETag != `"etag-2"` || r.CacheMaxAge != 3600 || !strings.HasPrefix(r.BlobKey, k2) || len(r.BlobKey) != 135 {
		t.Fatalf("remote %+v, %v", r, err)
	}
	for p, sum := range oldFiles {
		if got := fileSum(t, p); got != sum {
			t.Errorf("rkt 1.30's %s changed", p)
		}
	}
	// A second run is a no-op.
	if _, err := Migrate(st, cas, Options{}); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.List(); len(l) != 2 {
		t.Fatalf("after rerun: %d images", len(l))
	}
}

func TestMigrateRefusesOtherSchema(t *testing.T) {
	cas := filepath.Join(t.TempDir(), "cas")
	legacyDB(t, cas, "UPDATE version SET version = 8;")
	_, err := Migrate(newStore(t, cas), cas, Options{})
	if !errors.Is(err, ErrSchema) {
		t.Fatalf("want ErrSchema, got %v", err)
	}
}

func TestMigrateWaitsForRkt130Lock(t *testing.T) {
	cas := filepath.Join(t.TempDir(), "cas")
	legacyDB(t, cas)
	st := newStore(t, cas)
	// A running rkt 1.30 holds a shared flock on cas/.
	fd, err := unix.Open(cas, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	_, err = Migrate(st, cas, Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("want ErrLocked, got %v", err)
	}
	unix.Flock(fd, unix.LOCK_UN)
	if _, err := Migrate(st, cas, Options{LockTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateSkipsDamagedBlob(t *testing.T) {
	cas := filepath.Join(t.TempDir(), "cas")
	k1, _ := legacyImage(t, cas, "example.com/one")
	legacyDB(t, cas, `INSERT INTO aciinfo VALUES ("`+k1+`", "example.com/one", now(), now(), false, 1024, 0);`)
	p := legacyPath(cas, blobDir, k1)
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o644)
	st := newStore(t, cas)
	rep, err := Migrate(st, cas, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Migrated() != 0 || !strings.Contains(rep.Images[0].Skipped, "not its key") {
		t.Fatalf("report %+v", rep)
	}
	if l, _ := st.List(); len(l) != 0 {
		t.Fatalf("damaged image indexed: %v", l)
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			out[p] = fileSum(t, p)
		}
		return nil
	})
	return out
}

func fileSum(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "missing"
	}
	s := sha512.Sum512(b)
	return hex.EncodeToString(s[:8])
}
