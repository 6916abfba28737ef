package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	bolt "go.etcd.io/bbolt"
)

// Buckets of the index.
var (
	bucketMeta      = []byte("meta")      // "version" -> decimal
	bucketImages    = []byte("images")    // image ID -> imageRecord (JSON)
	bucketManifests = []byte("manifests") // image ID -> manifest as stored in the image
	bucketRemotes   = []byte("remotes")   // URL -> Remote (JSON)
	keyVersion      = []byte("version")
)

// ImageInfo describes an image of the store.
type ImageInfo struct {
	ID         string // "sha512-<128 hex>"
	Name       string // manifest name
	Labels     types.Labels
	ImportTime time.Time
	LastUsed   time.Time
	Size       int64 // bytes of the stored (uncompressed) tar
	Latest     bool  // fetched by name without a version label
}

type imageRecord struct {
	Name       string       `json:"name"`
	Labels     types.Labels `json:"labels,omitempty"`
	ImportTime time.Time    `json:"importTime"`
	LastUsed   time.Time    `json:"lastUsed"`
	Size       int64        `json:"size"`
	Latest     bool         `json:"latest,omitempty"`
}

func (r *imageRecord) info(id string) ImageInfo {
	return ImageInfo{ID: id, Name: r.Name, Labels: r.Labels, ImportTime: r.ImportTime, LastUsed: r.LastUsed, Size: r.Size, Latest: r.Latest}
}

// Remote records where and when an image was downloaded, so that a fetch
// can revalidate (ETag) or skip the network (CacheMaxAge seconds).
type Remote struct {
	URL          string
	ETag         string
	BlobKey      string
	CacheMaxAge  int
	DownloadTime time.Time
}

// errNeedInit: the index lacks buckets or its version.
var errNeedInit = errors.New("index needs initialising")

func checkIndex(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketMeta, bucketImages, bucketManifests, bucketRemotes} {
		if tx.Bucket(b) == nil {
			return errNeedInit
		}
	}
	return checkVersion(tx.Bucket(bucketMeta).Get(keyVersion))
}

func checkVersion(v []byte) error {
	if v == nil {
		return errNeedInit
	}
	if n, err := strconv.Atoi(string(v)); err != nil || n != Version {
		return fmt.Errorf("store version %q, this rkt handles %d: %w", v, Version, ErrVersion)
	}
	return nil
}

func initIndex(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketMeta, bucketImages, bucketManifests, bucketRemotes} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return fmt.Errorf("creating index bucket %s: %w", b, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	err := checkVersion(meta.Get(keyVersion))
	if errors.Is(err, errNeedInit) {
		return meta.Put(keyVersion, []byte(strconv.Itoa(Version)))
	}
	return err
}

func getRecord(tx *bolt.Tx, id string) (*imageRecord, error) {
	data := tx.Bucket(bucketImages).Get([]byte(id))
	if data == nil {
		return nil, fmt.Errorf("image %s: %w", id, ErrNotFound)
	}
	var r imageRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding index record of %s: %w", id, err)
	}
	return &r, nil
}

func putRecord(tx *bolt.Tx, id string, r *imageRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding index record of %s: %w", id, err)
	}
	return tx.Bucket(bucketImages).Put([]byte(id), data)
}

// resolveKey finds the one image whose ID starts with key.
func resolveKey(tx *bolt.Tx, key string) (string, error) {
	k, err := checkKey(key)
	if err != nil {
		return "", err
	}
	c := tx.Bucket(bucketImages).Cursor()
	var found string
	for id, _ := c.Seek([]byte(k)); id != nil && bytes.HasPrefix(id, []byte(k)); id, _ = c.Next() {
		if found != "" {
			return "", fmt.Errorf("image ID %s: %w", key, ErrAmbiguous)
		}
		found = string(id)
	}
	if found == "" {
		return "", fmt.Errorf("image %s: %w", key, ErrNotFound)
	}
	return found, nil
}

// ResolveKey returns the full ID of the image whose ID is, or starts with,
// idOrPrefix ("sha512-" and at least two hex digits).
func (s *Store) ResolveKey(idOrPrefix string) (string, error) {
	var id string
	err := s.view(func(tx *bolt.Tx) (err error) {
		id, err = resolveKey(tx, idOrPrefix)
		return err
	})
	return id, err
}

// Info describes the image named by key (an ID or ID prefix).
func (s *Store) Info(key string) (ImageInfo, error) {
	var info ImageInfo
	err := s.view(func(tx *bolt.Tx) error {
		id, err := resolveKey(tx, key)
		if err != nil {
			return err
		}
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		info = r.info(id)
		return nil
	})
	return info, err
}

func getManifest(tx *bolt.Tx, id string) (*schema.ImageManifest, error) {
	data := tx.Bucket(bucketManifests).Get([]byte(id))
	if data == nil {
		return nil, fmt.Errorf("manifest of image %s: %w", id, ErrNotFound)
	}
	var m schema.ImageManifest
	if err := m.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("decoding manifest of image %s: %w", id, err)
	}
	return &m, nil
}

// GetImageManifest returns the manifest of the image named by key.
func (s *Store) GetImageManifest(key string) (*schema.ImageManifest, error) {
	var m *schema.ImageManifest
	err := s.view(func(tx *bolt.Tx) error {
		id, err := resolveKey(tx, key)
		if err != nil {
			return err
		}
		m, err = getManifest(tx, id)
		return err
	})
	return m, err
}

// ReadStream opens the stored (uncompressed) tar of the image with the full
// ID key.
func (s *Store) ReadStream(key string) (io.ReadCloser, error) {
	k, err := checkKey(key)
	if err != nil {
		return nil, err
	}
	if !isFullKey(k) {
		return nil, fmt.Errorf("reading image %s: want a full image ID: %w", key, ErrInvalidKey)
	}
	f, err := os.Open(s.blobPath(k))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading image %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading image %s: %w", key, err)
	}
	return &bufferedFile{Reader: bufio.NewReaderSize(f, readBufSize), f: f}, nil
}

// readBufSize: tar readers ask for one 512-byte header at a time.
const readBufSize = 256 << 10

type bufferedFile struct {
	*bufio.Reader
	f *os.File
}

func (b *bufferedFile) Close() error { return b.f.Close() }

// labelsMatch tells whether every wanted label is among the image's.
func labelsMatch(have, want types.Labels) bool {
	for _, w := range want {
		if v, ok := have.Get(w.Name.String()); !ok || v != w.Value {
			return false
		}
	}
	return true
}

// getACI applies appc's matching rules: the image has the name and every
// requested label. Among several, when no version is requested those fetched
// as "latest" come first; then the newest import wins.
func getACI(tx *bolt.Tx, name types.ACIdentifier, labels types.Labels) (string, error) {
	_, versionRequested := labels.Get("version")
	var bestID string
	var best *imageRecord
	err := tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
		var r imageRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decoding index record of %s: %w", k, err)
		}
		if r.Name != name.String() || !labelsMatch(r.Labels, labels) {
			return nil
		}
		if best != nil {
			if !versionRequested && best.Latest != r.Latest {
				if !r.Latest {
					return nil
				}
			} else if !r.ImportTime.After(best.ImportTime) {
				return nil
			}
		}
		best, bestID = &r, string(k)
		return nil
	})
	if err != nil {
		return "", err
	}
	if best == nil {
		return "", fmt.Errorf("image %s%s: %w", name, labelString(labels), ErrNotFound)
	}
	return bestID, nil
}

func labelString(labels types.Labels) string {
	var b bytes.Buffer
	for _, l := range labels {
		fmt.Fprintf(&b, ",%s=%s", l.Name, l.Value)
	}
	return b.String()
}

// GetACI returns the ID of the image best matching name and labels, by
// appc's rules (every requested label must match); see getACI.
func (s *Store) GetACI(name types.ACIdentifier, labels types.Labels) (string, error) {
	var id string
	err := s.view(func(tx *bolt.Tx) (err error) {
		id, err = getACI(tx, name, labels)
		return err
	})
	return id, err
}

func (s *Store) listWhere(match func(*imageRecord) bool) ([]ImageInfo, error) {
	var out []ImageInfo
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			var r imageRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding index record of %s: %w", k, err)
			}
			if match == nil || match(&r) {
				out = append(out, r.info(string(k)))
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].ImportTime.Before(out[j].ImportTime) })
	return out, err
}

// FindByName lists the images named name, oldest import first.
func (s *Store) FindByName(name string) ([]ImageInfo, error) {
	return s.listWhere(func(r *imageRecord) bool { return r.Name == name })
}

// List lists every image, oldest import first.
func (s *Store) List() ([]ImageInfo, error) {
	return s.listWhere(nil)
}

// markUsedGranularity: a last-use time closer than this to the stored one
// is not worth a write.
const markUsedGranularity = time.Second

// MarkUsed records that the images of keys were used at t. It runs on every
// rkt run, so it is one transaction for all of a pod's images, the write is
// not fsync'ed (a lost last-use time after a power failure is harmless),
// and an image whose stored time is within a second of t is left alone: a
// read-only look first spares the exclusive lock and the commit when no
// image needs the write. A key that names no image is reported (all such
// keys, joined) without keeping the others from being recorded.
func (s *Store) MarkUsed(t time.Time, keys ...string) error {
	var stale []string
	var errs []error
	err := s.view(func(tx *bolt.Tx) error {
		for _, key := range keys {
			id, r, err := usedRecord(tx, key)
			if err != nil {
				errs = append(errs, err)
			} else if !recentlyUsed(r, t) {
				stale = append(stale, id)
			}
		}
		return nil
	})
	if err != nil || len(stale) == 0 {
		return errors.Join(append(errs, err)...)
	}
	err = s.update(true, func(tx *bolt.Tx) error {
		for _, id := range stale {
			_, r, err := usedRecord(tx, id)
			if err != nil {
				continue // removed since the look: nothing to record
			}
			if recentlyUsed(r, t) {
				continue
			}
			r.LastUsed = t
			if err := putRecord(tx, id, r); err != nil {
				return err
			}
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

func usedRecord(tx *bolt.Tx, key string) (string, *imageRecord, error) {
	id, err := resolveKey(tx, key)
	if err != nil {
		return "", nil, err
	}
	r, err := getRecord(tx, id)
	return id, r, err
}

// recentlyUsed: r's last use is within markUsedGranularity of t.
func recentlyUsed(r *imageRecord, t time.Time) bool {
	d := t.Sub(r.LastUsed)
	return d < markUsedGranularity && d > -markUsedGranularity
}

// GetRemote returns the download record of url, or ErrNotFound.
func (s *Store) GetRemote(url string) (*Remote, error) {
	var r *Remote
	err := s.view(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketRemotes).Get([]byte(url))
		if data == nil {
			return fmt.Errorf("remote %s: %w", url, ErrNotFound)
		}
		r = new(Remote)
		if err := json.Unmarshal(data, r); err != nil {
			return fmt.Errorf("decoding remote %s: %w", url, err)
		}
		return nil
	})
	return r, err
}

// SetRemote records (or replaces) the download record of r.URL.
func (s *Store) SetRemote(r *Remote) error {
	if r.URL == "" {
		return fmt.Errorf("recording remote: empty URL: %w", ErrInvalidKey)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding remote %s: %w", r.URL, err)
	}
	return s.update(false, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRemotes).Put([]byte(r.URL), data)
	})
}

// RemoveRemote forgets the download record of url (ErrNotFound if none).
func (s *Store) RemoveRemote(url string) error {
	return s.update(false, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRemotes)
		if b.Get([]byte(url)) == nil {
			return fmt.Errorf("remote %s: %w", url, ErrNotFound)
		}
		return b.Delete([]byte(url))
	})
}

// removeRemotesOf drops the download records pointing at image id.
func removeRemotesOf(tx *bolt.Tx, id string) error {
	b := tx.Bucket(bucketRemotes)
	var urls [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var r Remote
		if json.Unmarshal(v, &r) == nil && r.BlobKey == id {
			urls = append(urls, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, u := range urls {
		if err := b.Delete(u); err != nil {
			return err
		}
	}
	return nil
}
