package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/appc/spec/schema"
	bolt "go.etcd.io/bbolt"
)

// Adopted describes an image stored by another store (rkt 1.30's) that
// Adopt brings into this one, keeping its history.
type Adopted struct {
	// Blob is the path of the image's uncompressed tar in the other store.
	Blob string
	// RawManifest is the image manifest, byte for byte.
	RawManifest []byte
	ImportTime  time.Time
	LastUsed    time.Time
	Latest      bool
}

// Adopt indexes the image whose uncompressed tar is a.Blob under its full
// image ID, with the import time, last use and latest flag the other store
// recorded. The blob is hard-linked into blob/ (copied when the link is
// refused, across file systems say), so the other store's file stays as
// it was. Adopting an image already indexed changes nothing and returns
// the stored info: a migration killed half-way is simply run again.
func (s *Store) Adopt(a Adopted) (ImageInfo, error) {
	var m schema.ImageManifest
	if err := m.UnmarshalJSON(a.RawManifest); err != nil {
		return ImageInfo{}, fmt.Errorf("adopting image %s: manifest: %w", a.Blob, err)
	}
	w, err := s.newWork("adopt")
	if err != nil {
		return ImageInfo{}, fmt.Errorf("adopting image %s: %w", a.Blob, err)
	}
	defer w.release()
	tmp := w.path("blob")
	if err := os.Link(a.Blob, tmp); err != nil {
		if err := copyFile(a.Blob, tmp); err != nil {
			return ImageInfo{}, fmt.Errorf("adopting image %s: %w", a.Blob, err)
		}
	}
	id, size, err := hashFile(tmp)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("adopting image %s: %w", a.Blob, err)
	}
	var info ImageInfo
	err = s.update(false, func(tx *bolt.Tx) error {
		if r, err := getRecord(tx, id); err == nil {
			info = r.info(id)
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		dst := s.blobPath(id)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
		r := &imageRecord{
			Name: m.Name.String(), Labels: m.Labels,
			ImportTime: a.ImportTime, LastUsed: a.LastUsed, Size: size, Latest: a.Latest,
		}
		if err := putRecord(tx, id, r); err != nil {
			return err
		}
		if err := tx.Bucket(bucketManifests).Put([]byte(id), a.RawManifest); err != nil {
			return err
		}
		info = r.info(id)
		return nil
	})
	if err != nil {
		return ImageInfo{}, fmt.Errorf("adopting image %s: %w", id, err)
	}
	return info, nil
}

func hashFile(path string) (id string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := newHash()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", path, err)
	}
	return keyPrefix + fmt.Sprintf("%x", h.Sum(nil)), n, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, in, make([]byte, 1<<20)); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
