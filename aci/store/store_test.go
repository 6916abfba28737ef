package store

import (
	"archive/tar"
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	bolt "go.etcd.io/bbolt"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/aci/archive"
)

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "cas"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testImage is an image to build: name, labels, files, and an optional
// change to its manifest (dependencies, pathWhitelist).
type testImage struct {
	name   string
	labels map[string]string
	files  []acibuild.File
	edit   func(*schema.ImageManifest)
}

func (ti testImage) build(t testing.TB, opts ...acibuild.Option) []byte {
	t.Helper()
	m, err := acibuild.Manifest(ti.name, ti.labels)
	if err != nil {
		t.Fatal(err)
	}
	if ti.edit != nil {
		ti.edit(m)
	}
	var buf bytes.Buffer
	if err := acibuild.Build(&buf, m, ti.files, opts...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(p, data string) acibuild.File {
	return acibuild.File{Path: p, Mode: 0o644, Data: []byte(data)}
}

func importImage(t testing.TB, s *Store, ti testImage, opts ...ImportOptions) ImageInfo {
	t.Helper()
	var o ImportOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	info, err := s.Import(bytes.NewReader(ti.build(t, acibuild.WithGzip())), o)
	if err != nil {
		t.Fatalf("importing %s: %v", ti.name, err)
	}
	return info
}

func idOf(data []byte) string {
	sum := sha512.Sum512(data)
	return "sha512-" + hex.EncodeToString(sum[:])
}

func TestOpenLayoutAndVersion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cas")
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"blob/sha512", "db", "tree", "tmp"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	// Open again: the version written the first time is accepted.
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "db", "index.db"), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte("99")) })
	db.Close()
	if _, err := Open(dir); !errors.Is(err, ErrVersion) {
		t.Fatalf("Open of a version 99 store: %v, want ErrVersion", err)
	}
}

func TestImportAndQuery(t *testing.T) {
	s := newStore(t)
	ti := testImage{name: "example.com/app", labels: map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"},
		files: []acibuild.File{file("etc/hello", "hello"), {Path: "bin/app", Mode: 0o755, Data: []byte("app")}}}
	plain := ti.build(t)
	before := time.Now()
	info, err := s.Import(bytes.NewReader(ti.build(t, acibuild.WithGzip())), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != idOf(plain) {
		t.Errorf("ID %s, want the sha512 of the uncompressed tar %s", info.ID, idOf(plain))
	}
	if info.Name != "example.com/app" || info.Size != int64(len(plain)) || info.Latest {
		t.Errorf("info %+v", info)
	}
	if v, _ := info.Labels.Get("version"); v != "1.0" {
		t.Errorf("labels %v", info.Labels)
	}
	if info.ImportTime.Before(before) || !info.LastUsed.Equal(info.ImportTime) {
		t.Errorf("times %v %v", info.ImportTime, info.LastUsed)
	}
	blob := filepath.Join(s.Dir(), "blob", "sha512", info.ID[7:9], info.ID)
	if data, err := os.ReadFile(blob); err != nil || !bytes.Equal(data, plain) {
		t.Errorf("blob %s: %v", blob, err)
	}

	rs, err := s.ReadStream(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rs)
	rs.Close()
	if !bytes.Equal(data, plain) {
		t.Errorf("ReadStream differs from the uncompressed image")
	}
	m, err := s.GetImageManifest(info.ID[:20])
	if err != nil || m.Name != "example.com/app" {
		t.Fatalf("GetImageManifest: %v %v", m, err)
	}
	got, err := s.Info(info.ID[:10])
	if err != nil || got.ID != info.ID || !got.ImportTime.Equal(info.ImportTime) {
		t.Fatalf("Info: %+v %v", got, err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].ID != info.ID {
		t.Fatalf("List: %+v %v", list, err)
	}
	byName, err := s.FindByName("example.com/app")
	if err != nil || len(byName) != 1 {
		t.Fatalf("FindByName: %+v %v", byName, err)
	}
	if none, err := s.FindByName("example.com/other"); err != nil || len(none) != 0 {
		t.Fatalf("FindByName(other): %+v %v", none, err)
	}

	// Same image again (plain this time): a no-op, except Latest.
	again, err := s.Import(bytes.NewReader(plain), ImportOptions{Latest: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != info.ID || !again.ImportTime.Equal(info.ImportTime) || !again.Latest {
		t.Errorf("re-import: %+v", again)
	}
	if list, _ := s.List(); len(list) != 1 {
		t.Errorf("re-import added an entry: %+v", list)
	}
	assertTmpEmpty(t, s)
}

func TestResolveKey(t *testing.T) {
	s := newStore(t)
	// Import images until two IDs share their first two hex digits.
	seen := map[string]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		info := importImage(t, s, testImage{name: "example.com/k", files: []acibuild.File{file("n", fmt.Sprint(i))}})
		p := info.ID[:9]
		if other, ok := seen[p]; ok {
			a, b = other, info.ID
		}
		seen[p] = info.ID
	}
	for _, tc := range []struct {
		key  string
		want string
		err  error
	}{
		{a, a, nil},
		{strings.ToUpper(a[:7]) + a[7:], a, nil},
		{a[:9], "", ErrAmbiguous},
		{a[:40], a, nil},
		{b[:40], b, nil},
		{"sha512-a", "", ErrInvalidKey},
		{"sha512-zz", "", ErrInvalidKey},
		{"sha256-" + a[7:], "", ErrInvalidKey},
		{a[7:], "", ErrInvalidKey},
		{a + "00", "", ErrInvalidKey},
		{"sha512-" + strings.Repeat("0", 128), "", ErrNotFound},
	} {
		got, err := s.ResolveKey(tc.key)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ResolveKey(%.20s...) = %.20s, %v; want %.20s, %v", tc.key, got, err, tc.want, tc.err)
		}
	}
	if _, err := s.Info("sha512-" + strings.Repeat("0", 128)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Info of a missing image: %v", err)
	}
	if _, err := s.ReadStream("sha512-" + strings.Repeat("0", 128)); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadStream of a missing image: %v", err)
	}
}

func TestImportRefusesBadImages(t *testing.T) {
	s := newStore(t)
	var evil bytes.Buffer
	acibuild.RawEntries(&evil, []acibuild.RawEntry{
		{Header: tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644}, Data: []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/evil"}`)},
		{Header: tar.Header{Name: "rootfs/x", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
		{Header: tar.Header{Name: "rootfs/x/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, Data: []byte("root::0:0")},
	})
	for name, data := range map[string][]byte{
		"escape":    evil.Bytes(),
		"garbage":   bytes.Repeat([]byte("not an image "), 100),
		"truncated": testImage{name: "example.com/t", files: []acibuild.File{file("a", strings.Repeat("a", 50000))}}.build(t)[:30000],
	} {
		_, err := s.Import(bytes.NewReader(data), ImportOptions{})
		if err == nil {
			t.Errorf("%s: imported", name)
		}
	}
	_, err := s.Import(bytes.NewReader(evil.Bytes()), ImportOptions{})
	if !errors.Is(err, archive.ErrUnsafeEntry) || !strings.Contains(err.Error(), "rootfs/x/passwd") {
		t.Errorf("error %v should name the entry and wrap ErrUnsafeEntry", err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("listed: %+v", list)
	}
	if trees, _ := s.ListTrees(); len(trees) != 0 {
		t.Errorf("trees: %v", trees)
	}
	assertTmpEmpty(t, s)
	assertNoBlobs(t, s)
}

func assertTmpEmpty(t *testing.T, s *Store) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if err != nil || len(entries) != 0 {
		t.Errorf("tmp/ not empty: %v %v", entries, err)
	}
}

func assertNoBlobs(t *testing.T, s *Store) {
	t.Helper()
	filepath.WalkDir(filepath.Join(s.Dir(), "blob"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("blob left: %s", p)
		}
		return nil
	})
}

func labels(kv ...string) types.Labels {
	var out types.Labels
	for i := 0; i < len(kv); i += 2 {
		out = append(out, types.Label{Name: types.ACIdentifier(kv[i]), Value: kv[i+1]})
	}
	return out
}

func TestGetACILabelMatching(t *testing.T) {
	s := newStore(t)
	mk := func(version, arch string, opts ImportOptions) string {
		return importImage(t, s, testImage{name: "example.com/app",
			labels: map[string]string{"version": version, "os": "linux", "arch": arch},
			files:  []acibuild.File{file("v", version+arch)}}, opts).ID
	}
	v1 := mk("1.0", "amd64", ImportOptions{Latest: true})
	v2 := mk("2.0", "amd64", ImportOptions{})
	v2arm := mk("2.0", "aarch64", ImportOptions{})
	v3arm := mk("3.0", "aarch64", ImportOptions{})
	name := types.ACIdentifier("example.com/app")
	for _, tc := range []struct {
		what   string
		name   types.ACIdentifier
		labels types.Labels
		want   string
	}{
		{"no version: the image fetched as latest wins", name, nil, v1},
		{"os and arch: latest first", name, labels("os", "linux", "arch", "amd64"), v1},
		{"arch only", name, labels("arch", "aarch64"), v3arm},
		{"version picks", name, labels("version", "2.0"), v2arm},
		{"version and arch", name, labels("version", "2.0", "arch", "amd64"), v2},
		{"version 1.0", name, labels("version", "1.0", "os", "linux"), v1},
		{"other os", name, labels("os", "freebsd"), ""},
		{"unknown version", name, labels("version", "9"), ""},
		{"label the image lacks", name, labels("flavor", "x"), ""},
		{"other name", "example.com/nope", nil, ""},
	} {
		got, err := s.GetACI(tc.name, tc.labels)
		if tc.want == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: got %s %v, want ErrNotFound", tc.what, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %.20s %v, want %.20s", tc.what, got, err, tc.want)
		}
	}
}

func TestRemotes(t *testing.T) {
	s := newStore(t)
	if _, err := s.GetRemote("https://example.com/a.aci"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRemote: %v", err)
	}
	info := importImage(t, s, testImage{name: "example.com/r"})
	r := &Remote{URL: "https://example.com/a.aci", ETag: `"abc"`, BlobKey: info.ID, CacheMaxAge: 60, DownloadTime: time.Now().Round(0)}
	if err := s.SetRemote(r); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRemote(r.URL)
	if err != nil || got.ETag != r.ETag || got.BlobKey != r.BlobKey || got.CacheMaxAge != 60 || !got.DownloadTime.Equal(r.DownloadTime) {
		t.Fatalf("GetRemote: %+v %v", got, err)
	}
	if err := s.RemoveRemote(r.URL); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveRemote(r.URL); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveRemote twice: %v", err)
	}
	// Removing the image drops the records pointing at it.
	s.SetRemote(r)
	if err := s.Remove(info.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRemote(r.URL); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remote survived its image: %v", err)
	}
}

func TestMarkUsed(t *testing.T) {
	s := newStore(t)
	info := importImage(t, s, testImage{name: "example.com/u"})
	other := importImage(t, s, testImage{name: "example.com/v"})
	later := info.ImportTime.Add(time.Hour)
	missing := "sha512-" + strings.Repeat("1", 128)
	// One missing key is reported and keeps no other image from its mark.
	if err := s.MarkUsed(later, info.ID, missing, other.ID); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), missing[:20]) {
		t.Fatalf("MarkUsed with a missing image: %v, want ErrNotFound naming it", err)
	}
	for _, id := range []string{info.ID, other.ID} {
		if got, _ := s.Info(id); !got.LastUsed.Equal(later) {
			t.Fatalf("LastUsed of %s: %v, want %v", id, got.LastUsed, later)
		}
	}
	// Within a second of the stored time: not worth a write, nor the
	// exclusive lock (another process reading the index does not hold
	// the mark up).
	s.LockTimeout = 200 * time.Millisecond
	reader, err := bolt.Open(s.dbPath(), 0o644, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = s.MarkUsed(later.Add(500*time.Millisecond), info.ID, other.ID)
	reader.Close()
	if err != nil {
		t.Fatalf("MarkUsed needing no write, beside a reader: %v", err)
	}
	if got, _ := s.Info(info.ID); !got.LastUsed.Equal(later) {
		t.Fatalf("LastUsed %v, want unchanged %v", got.LastUsed, later)
	}
}

func TestLockedIndex(t *testing.T) {
	s := newStore(t)
	s.LockTimeout = 200 * time.Millisecond
	// Another "process" holding the index: bolt's flock is per open file.
	db, err := bolt.Open(s.dbPath(), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.List()
	db.Close()
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "store is locked by another rkt process") {
		t.Fatalf("List while locked: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 5*time.Second {
		t.Errorf("waited %v for a 200ms timeout", d)
	}
	if _, err := s.List(); err != nil {
		t.Fatalf("List after unlock: %v", err)
	}
}
