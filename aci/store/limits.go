package store

import (
	"errors"
	"fmt"
	"io"

	"strings"

	"github.com/appc/spec/pkg/acirenderer"
	"github.com/appc/spec/schema"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/aci/archive"
)

// Default limits of what one image may cost: far above any real image
// (the largest public container images are a few tens of GiB), far below
// what a bomb asks for.
const (
	DefaultMaxImageSize    = 64 << 30 // uncompressed tar
	DefaultMaxRenderedSize = 64 << 30 // regular files of a tree, all layers
)

// ErrNoSpace: the store's file system lacks the free space an image needs.
var ErrNoSpace = errors.New("not enough free space in the store")

// Limits bound what one image may cost (0: the default).
type Limits struct {
	MaxImageSize    int64
	MaxRenderedSize int64
}

func (l Limits) image() int64 {
	if l.MaxImageSize > 0 {
		return l.MaxImageSize
	}
	return DefaultMaxImageSize
}

func (l Limits) rendered() int64 {
	if l.MaxRenderedSize > 0 {
		return l.MaxRenderedSize
	}
	return DefaultMaxRenderedSize
}

// freeSpace reports the bytes an unprivileged writer may still use under
// dir, less a reserve (5% of the file system, at most 1 GiB) so that an
// import never takes the last of it. A variable for tests.
var freeSpace = func(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, &fsError{dir, err}
	}
	bs := int64(st.Bsize)
	avail, total := int64(st.Bavail)*bs, int64(st.Blocks)*bs
	return avail - min(total/20, 1<<30), nil
}

type fsError struct {
	dir string
	err error
}

func (e *fsError) Error() string { return fmt.Sprintf("statfs %s: %v", e.dir, e.err) }
func (e *fsError) Unwrap() error { return e.err }

// budgetReader passes an uncompressed image stream through, failing with
// ErrTooLarge past the image-size limit and with ErrNoSpace once what it
// costs (perBlob bytes of disk for each byte of stream: 1 for the blob, 2
// when the tree is rendered in the same pass) would exceed the free space
// measured before the import: an import fails before the disk fills.
type budgetReader struct {
	r       io.Reader
	n       int64
	limit   int64
	free    int64
	perByte int64
	dir     string
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	switch {
	case b.n > b.limit:
		return n, fmt.Errorf("image is larger than the limit of %s uncompressed (image-size-limit): %w",
			archive.FormatSize(b.limit), archive.ErrTooLarge)
	case b.n*b.perByte > b.free:
		return n, fmt.Errorf("image needs more than the %s free in %s: %w", archive.FormatSize(max(b.free, 0)), b.dir, ErrNoSpace)
	}
	return n, err
}

// checkRenderSpace refuses a render whose layers' blobs (what their trees
// take, about) add up to more than the free space, before writing any.
func (s *Store) checkRenderSpace(dir string, imgs acirenderer.Images) error {
	var need int64
	for _, img := range imgs {
		info, err := s.Info(img.Key)
		if err != nil {
			return err
		}
		need += info.Size
	}
	free, err := freeSpace(dir)
	if err != nil {
		return err
	}
	if need > free {
		return fmt.Errorf("its tree needs about %s, more than the %s free in %s: %w",
			archive.FormatSize(need), archive.FormatSize(max(free, 0)), s.dir, ErrNoSpace)
	}
	return nil
}

// checkDependencies refuses, within the index transaction that would list
// image id (manifest m), a dependency the store cannot resolve and a
// dependency cycle, naming them: such an image could never be rendered.
func checkDependencies(tx *bolt.Tx, id string, m *schema.ImageManifest) error {
	path := []string{m.Name.String()}
	onPath := map[string]bool{id: true}
	lookups := 0
	var walk func(m *schema.ImageManifest) error
	walk = func(m *schema.ImageManifest) error {
		for _, d := range m.Dependencies {
			if lookups++; lookups > maxDependencies {
				return fmt.Errorf("more than %d images in the dependency list of %s", maxDependencies, path[0])
			}
			var depID string
			var err error
			if d.ImageID != nil {
				depID, err = resolveKey(tx, d.ImageID.String())
			} else {
				depID, err = getACI(tx, d.ImageName, d.Labels)
			}
			if err != nil {
				return fmt.Errorf("dependency %s of %s: %w", d.ImageName, m.Name, err)
			}
			if onPath[depID] {
				return fmt.Errorf("dependency cycle: %s -> %s: %w", strings.Join(path, " -> "), d.ImageName, archive.ErrInvalidManifest)
			}
			dm, err := getManifest(tx, depID)
			if err != nil {
				return fmt.Errorf("dependency %s of %s: %w", d.ImageName, m.Name, err)
			}
			onPath[depID] = true
			path = append(path, d.ImageName.String())
			if err := walk(dm); err != nil {
				return err
			}
			path = path[:len(path)-1]
			delete(onPath, depID)
		}
		return nil
	}
	return walk(m)
}
