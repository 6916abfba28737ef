// Package layercache keeps the compressed layers of docker images rkt
// converted, by digest, for the next conversion. It is apart from
// aci/docker so that image gc and image rm prune it without linking the
// registry client.
package layercache

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Cache keeps the compressed layers of converted images by digest, so
// that an image sharing a layer with one converted before (a common base
// image) downloads only the layers it lacks. The store keeps only the
// squashed ACI, which cannot give a layer back.
//
// Each converted image's layers are recorded under its store key; Prune
// drops the records of images gone from the store and the layers no record
// names. Layers arrive by link and records by rename, so a fetch killed at
// any point leaves at worst an unrecorded layer, which Prune removes.
type Cache struct {
	Dir string
}

func (c *Cache) blob(digest string) string {
	return filepath.Join(c.Dir, "blobs", strings.Replace(digest, ":", "-", 1))
}

func (c *Cache) record(key string) string {
	return filepath.Join(c.Dir, "images", key)
}

// Lookup links the cached layer, when it is there whole, to file (in the
// conversion's own directory, so that a Prune beside this fetch cannot
// take it away) and reports whether it did.
func (c *Cache) Lookup(digest string, size int64, file string) bool {
	if c == nil {
		return false
	}
	p := c.blob(digest)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() || (size > 0 && fi.Size() != size) {
		return false
	}
	return os.Link(p, file) == nil
}

// Keep links a downloaded (and verified) layer file into the cache. The
// cache is only a saving: a layer it cannot take (another file system, a
// full disk) is downloaded again next time.
func (c *Cache) Keep(digest, file string) {
	p := c.blob(digest)
	if os.MkdirAll(filepath.Dir(p), 0o700) == nil {
		_ = os.Link(file, p)
	}
}

// Record notes that the image stored under key is made of the layers
// digests.
func (c *Cache) Record(key string, digests []string) error {
	if strings.ContainsAny(key, "/\x00") || key == "" || key[0] == '.' {
		return fmt.Errorf("layer cache: bad image key %q", key)
	}
	p := c.record(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(digests, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("layer cache: %w", err)
	}
	return nil
}

// Prune removes the records of images for which exists is false, then
// the layers that no remaining record names (a conversion under way has
// its own links to its layers). It returns how many layers it removed.
func (c *Cache) Prune(exists func(key string) bool) (int, error) {
	recs, err := os.ReadDir(filepath.Join(c.Dir, "images"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("layer cache: %w", err)
	}
	used := map[string]bool{}
	var errs []error
	for _, r := range recs {
		key := r.Name()
		if strings.HasSuffix(key, ".tmp") || !exists(key) {
			if err := os.Remove(c.record(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		digests, err := readLines(c.record(key))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, d := range digests {
			used[filepath.Base(c.blob(d))] = true
		}
	}
	blobs, err := os.ReadDir(filepath.Join(c.Dir, "blobs"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("layer cache: %w", err)
	}
	removed := 0
	for _, b := range blobs {
		if used[b.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(c.Dir, "blobs", b.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("layer cache: %w", err)
	}
	return removed, nil
}

func readLines(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if l := strings.TrimSpace(s.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, s.Err()
}
