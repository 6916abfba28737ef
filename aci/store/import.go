package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rktng/rkt/aci/archive"
)

// ImportOptions qualify an import.
type ImportOptions struct {
	// Latest marks the image as fetched by name without a version label.
	Latest bool
	// NoRender skips rendering the tree in the same pass: for images
	// fetched to be run later (`rkt fetch`), where writing the tree now
	// would double the disk work of the fetch for nothing.
	NoRender bool
	// RequireDependencies refuses an image whose dependencies are not all
	// in the store (or form a cycle): for images imported by themselves,
	// not by a fetcher that fetches their dependencies next.
	RequireDependencies bool
}

// staleAfter is the age past which an import clears dead operations' debris.
const staleAfter = time.Hour

// Import reads a (possibly compressed) ACI, validates it, stores its
// uncompressed tar and indexes it. Importing an image already there is a
// no-op returning the existing info (besides setting Latest when asked).
//
// It reads the stream once: while hashing and storing it, it also renders
// the image's tree, kept when the image turns out to have no dependencies
// and no pathWhitelist, so that the first RenderTree finds it done.
func (s *Store) Import(r io.Reader, opts ImportOptions) (ImageInfo, error) {
	// Best effort: an import is the natural moment to clear old debris.
	_ = s.gcTmp(staleAfter)

	w, err := s.newWork("import")
	if err != nil {
		return ImageInfo{}, fmt.Errorf("importing image: %w", err)
	}
	defer w.release()

	res, err := s.receive(r, w, !opts.NoRender)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("importing image: %w", err)
	}
	info, err := s.commitImage(w, res, opts)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("importing image %s: %w", res.id, err)
	}
	if res.rendered && !s.HasTree(treeIDOf([]string{res.id})) {
		// Best effort: RenderTree renders it later otherwise.
		_ = s.publishTree(w.path("tree"), treeIDOf([]string{res.id}), []string{res.id})
	}
	return info, nil
}

// received is what one pass over an ACI stream produced in a work dir:
// blob (the uncompressed tar) and, if rendered, tree/{manifest,rootfs}.
type received struct {
	id       string
	size     int64
	img      *archive.Image
	rendered bool
}

func (s *Store) receive(r io.Reader, w *work, render bool) (*received, error) {
	dec, err := archive.NewReader(r)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	free, err := freeSpace(w.dir)
	if err != nil {
		return nil, err
	}
	if free <= 0 {
		return nil, fmt.Errorf("no free space left in %s: %w", s.dir, ErrNoSpace)
	}
	perByte := int64(1)
	if render {
		perByte = 2
	}
	budget := &budgetReader{r: dec, limit: s.Limits.image(), free: free, perByte: perByte, dir: s.dir}

	blob, err := createDirect(w.path("blob"))
	if err != nil {
		return nil, err
	}
	defer blob.Close()
	h := newHash()
	sk := newSink(h, blob)
	defer sk.Close()
	tee := io.TeeReader(budget, sk)

	treeDir := w.path("tree")
	if err := os.Mkdir(treeDir, 0o755); err != nil {
		return nil, err
	}
	x, err := archive.NewExtractor(treeDir)
	if err != nil {
		return nil, err
	}
	v := archive.NewValidator()
	v.MaxRenderedSize = s.Limits.rendered()
	img, err := v.Scan(tee, func(e *archive.Entry) error {
		if e.Manifest != nil && (len(e.Manifest.Dependencies) > 0 || len(e.Manifest.PathWhitelist) > 0) {
			// Rendering needs the other layers: RenderTree's job.
			render = false
		}
		if !render {
			return nil
		}
		return x.Entry(e)
	})
	if cerr := x.Close(); err == nil && render {
		err = cerr
	}
	if err == nil {
		// The image ID covers the whole stream, padding after the tar
		// included.
		_, err = io.CopyBuffer(io.Discard, tee, make([]byte, 64<<10))
	}
	if serr := sk.Close(); serr != nil {
		return nil, fmt.Errorf("writing blob: %w", serr)
	}
	if err != nil {
		return nil, err
	}
	if err := blob.Close(); err != nil {
		return nil, fmt.Errorf("writing blob: %w", err)
	}
	return &received{id: s.HashToKey(h), size: sk.n, img: img, rendered: render}, nil
}

// commitImage moves the blob into place and indexes the image, under the
// index lock so that GC never sees the blob unindexed.
func (s *Store) commitImage(w *work, res *received, opts ImportOptions) (info ImageInfo, err error) {
	err = s.update(false, func(tx *bolt.Tx) error {
		if r, err := getRecord(tx, res.id); err == nil {
			if opts.Latest && !r.Latest {
				r.Latest = true
				if err := putRecord(tx, res.id, r); err != nil {
					return err
				}
			}
			info = r.info(res.id)
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if opts.RequireDependencies {
			if err := checkDependencies(tx, res.id, res.img.Manifest); err != nil {
				return err
			}
		}
		dst := s.blobPath(res.id)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(w.path("blob"), dst); err != nil {
			return err
		}
		now := time.Now()
		r := &imageRecord{
			Name: res.img.Manifest.Name.String(), Labels: res.img.Manifest.Labels,
			ImportTime: now, LastUsed: now, Size: res.size, Latest: opts.Latest,
		}
		if err := putRecord(tx, res.id, r); err != nil {
			return err
		}
		if err := tx.Bucket(bucketManifests).Put([]byte(res.id), res.img.RawManifest); err != nil {
			return err
		}
		info = r.info(res.id)
		return nil
	})
	return info, err
}
