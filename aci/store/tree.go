package store

import (
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/appc/spec/pkg/acirenderer"
	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/aci/archive"
)

// The store is the registry the appc renderer resolves dependencies in.
var _ acirenderer.ACIRegistry = (*Store)(nil)

// treeIDPrefix starts every tree ID made by this store.
const treeIDPrefix = "deps-"

// maxDependencies bounds a dependency list: it also stops cycles, which
// the appc renderer would follow forever.
const maxDependencies = 256

// treeIDOf names the tree of an ordered dependency chain (upper image
// first): the same chain is rendered once and shared.
func treeIDOf(chain []string) string {
	sum := sha512.Sum512([]byte(strings.Join(chain, "\n")))
	return treeIDPrefix + keyPrefix + hex.EncodeToString(sum[:])
}

// checkTreeID refuses tree IDs that are not a single path component.
func checkTreeID(treeID string) error {
	if treeID == "" || treeID == "." || treeID == ".." || strings.ContainsAny(treeID, "/\x00") {
		return fmt.Errorf("tree ID %q: %w", treeID, ErrInvalidKey)
	}
	return nil
}

func (s *Store) treePath(treeID string) string { return filepath.Join(s.dir, treeDir, treeID) }

// TreeRootfs is the rootfs of the tree treeID.
func (s *Store) TreeRootfs(treeID string) string {
	return filepath.Join(s.treePath(treeID), archive.RootfsName)
}

// TreeManifest is the image manifest of the upper image of tree treeID.
func (s *Store) TreeManifest(treeID string) string {
	return filepath.Join(s.treePath(treeID), archive.ManifestName)
}

// HasTree tells whether the tree treeID is there and complete.
func (s *Store) HasTree(treeID string) bool {
	if checkTreeID(treeID) != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(s.treePath(treeID), doneFile))
	return err == nil
}

// TreeImages returns the image IDs a tree was rendered from, upper first.
func (s *Store) TreeImages(treeID string) ([]string, error) {
	if err := checkTreeID(treeID); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(s.treePath(treeID), doneFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tree %s: %w", treeID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading tree %s: %w", treeID, err)
	}
	return strings.Fields(string(data)), nil
}

// ListTrees lists the complete trees.
func (s *Store) ListTrees() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, treeDir))
	if err != nil {
		return nil, fmt.Errorf("listing trees: %w", err)
	}
	var out []string
	for _, e := range entries {
		if s.HasTree(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// RemoveTree removes the tree treeID. It disappears at once (renamed into
// tmp/), then is deleted. Callers make sure no pod uses it.
func (s *Store) RemoveTree(treeID string) error {
	if err := checkTreeID(treeID); err != nil {
		return err
	}
	w, err := s.newWork("rmtree")
	if err != nil {
		return fmt.Errorf("removing tree %s: %w", treeID, err)
	}
	err = os.Rename(s.treePath(treeID), w.path("tree"))
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("tree %s: %w", treeID, ErrNotFound)
	} else if err != nil {
		err = fmt.Errorf("removing tree %s: %w", treeID, err)
	}
	if rerr := w.release(); err == nil && rerr != nil {
		err = fmt.Errorf("removing tree %s: %w", treeID, rerr)
	}
	return err
}

// publishTree gives the complete tree in dir its done marker and renames
// it to tree/<treeID>. If another process published the same tree first,
// theirs stays and ours is left for the caller to discard.
func (s *Store) publishTree(dir, treeID string, chain []string) error {
	if err := os.WriteFile(filepath.Join(dir, doneFile), []byte(strings.Join(chain, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("publishing tree %s: %w", treeID, err)
	}
	err := renameNoReplace(dir, s.treePath(treeID))
	if err == nil || errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
		return nil
	}
	return fmt.Errorf("publishing tree %s: %w", treeID, err)
}

// renameNoReplace renames, failing with EEXIST if newpath exists, on file
// systems that can tell; others fall back to rename(2), which refuses to
// replace a non-empty directory anyway.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		err = os.Rename(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// txRegistry resolves a dependency list within one index transaction.
type txRegistry struct {
	*Store
	tx      *bolt.Tx
	lookups int
}

func (r *txRegistry) ResolveKey(key string) (string, error) { return resolveKey(r.tx, key) }

func (r *txRegistry) GetImageManifest(key string) (*schema.ImageManifest, error) {
	if r.lookups++; r.lookups > maxDependencies {
		return nil, fmt.Errorf("more than %d images in the dependency list (a cycle?)", maxDependencies)
	}
	return getManifest(r.tx, key)
}

func (r *txRegistry) GetACI(name types.ACIdentifier, labels types.Labels) (string, error) {
	id, err := getACI(r.tx, name, labels)
	if err != nil {
		return "", fmt.Errorf("dependency %w", err)
	}
	return id, nil
}

// RenderTree renders the image named by key with its dependencies into the
// tree store and returns the tree ID. Layers go in appc order (A->[B,C],
// C->[D] gives B, D, C, A; later wins; pathWhitelist honoured). A tree
// already rendered costs an index lookup and a stat. Dependencies missing
// from the store fail the render with an error naming them (ErrNotFound).
func (s *Store) RenderTree(key string) (treeID string, err error) {
	var imgs acirenderer.Images
	err = s.view(func(tx *bolt.Tx) error {
		id, err := resolveKey(tx, key)
		if err != nil {
			return err
		}
		h, err := types.NewHash(id)
		if err != nil {
			return fmt.Errorf("image ID %s: %w", id, ErrInvalidKey)
		}
		imgs, err = acirenderer.CreateDepListFromImageID(*h, &txRegistry{Store: s, tx: tx})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("rendering image %s: %w", key, err)
	}
	chain := make([]string, len(imgs))
	for i, img := range imgs {
		chain[i] = img.Key
	}
	treeID = treeIDOf(chain)
	if s.HasTree(treeID) {
		return treeID, nil
	}
	if err := s.render(imgs, treeID, chain); err != nil {
		return "", fmt.Errorf("rendering image %s: %w", chain[0], err)
	}
	return treeID, nil
}

func (s *Store) render(imgs acirenderer.Images, treeID string, chain []string) error {
	w, err := s.newWork("render")
	if err != nil {
		return err
	}
	defer w.release()
	dst := w.path("tree")
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	if err := s.checkRenderSpace(w.dir, imgs); err != nil {
		return err
	}
	x, err := archive.NewExtractor(dst)
	if err != nil {
		return err
	}
	x.MaxRenderedSize = s.Limits.rendered()
	if len(imgs) == 1 && len(imgs[0].Im.PathWhitelist) == 0 {
		err = s.extractVerified(x, imgs[0].Key)
	} else {
		err = s.extractLayers(x, imgs)
	}
	if cerr := x.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return s.publishTree(dst, treeID, chain)
}

// extractVerified extracts a whole image, checking its blob against its ID.
func (s *Store) extractVerified(x *archive.Extractor, id string) error {
	rs, err := s.ReadStream(id)
	if err != nil {
		return err
	}
	defer rs.Close()
	h := newHash()
	sk := newSink(h, nil)
	defer sk.Close()
	tee := io.TeeReader(rs, sk)
	if _, err := x.Add(tee, nil); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	if err := sk.Close(); err != nil {
		return err
	}
	if got := s.HashToKey(h); got != id {
		return fmt.Errorf("image %s: stored blob hashes to %s: %w", id, got, archive.ErrCorrupt)
	}
	return nil
}

// extractLayers lets the appc renderer choose which entries of which image
// make the tree (it also checks each blob's hash), then extracts them lowest
// layer first.
func (s *Store) extractLayers(x *archive.Extractor, imgs acirenderer.Images) error {
	ra, err := acirenderer.GetRenderedACIFromList(imgs, s)
	if err != nil {
		return err
	}
	for _, layer := range slices.Backward(ra) {
		if err := s.extractLayer(x, layer); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) extractLayer(x *archive.Extractor, layer *acirenderer.ACIFiles) error {
	rs, err := s.ReadStream(layer.Key)
	if err != nil {
		return err
	}
	defer rs.Close()
	if _, err := x.Add(rs, layer.FileMap); err != nil {
		return fmt.Errorf("layer %s: %w", layer.Key, err)
	}
	return nil
}

// Remove removes the image named by key: its index entry, its blob, the
// download records pointing at it, and the trees rendered from it except
// those listed in keepTrees (trees pods still use).
func (s *Store) Remove(key string, keepTrees ...string) error {
	w, err := s.newWork("rm")
	if err != nil {
		return fmt.Errorf("removing image %s: %w", key, err)
	}
	defer w.release()
	var id string
	moved := false
	err = s.update(false, func(tx *bolt.Tx) error {
		if id, err = resolveKey(tx, key); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketImages, bucketManifests} {
			if err := tx.Bucket(b).Delete([]byte(id)); err != nil {
				return err
			}
		}
		if err := removeRemotesOf(tx, id); err != nil {
			return err
		}
		// Out of blob/ within the transaction: an import of the same
		// image waits for our commit, then stores the blob afresh.
		err := os.Rename(s.blobPath(id), w.path("blob"))
		if err == nil {
			moved = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
	if err != nil {
		if moved {
			os.Rename(w.path("blob"), s.blobPath(id))
		}
		return fmt.Errorf("removing image %s: %w", key, err)
	}
	trees, err := s.ListTrees()
	if err != nil {
		return fmt.Errorf("removing trees of image %s: %w", id, err)
	}
	var errs []error
	for _, t := range trees {
		if slices.Contains(keepTrees, t) {
			continue
		}
		chain, err := s.TreeImages(t)
		if err != nil || !slices.Contains(chain, id) {
			continue
		}
		if err := s.RemoveTree(t); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing trees of image %s: %w", id, errors.Join(errs...))
	}
	return nil
}
