package fetch

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/rktng/rkt/aci/docker"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// ociSource is an OCI image layout, as podman, skopeo, buildah and docker
// save write it: a tarball (oci-archive:PATH[:REF]) or a directory
// (oci:DIR[:REF]). REF picks the image of the layout's index by its
// org.opencontainers.image.ref.name (or io.containerd.image.name)
// annotation; without it the index must hold one image. The image is
// converted to an ACI as a docker one is (aci/docker), read in place: a
// tarball is indexed once, not unpacked.
//
// A layout carries no signature rkt can check, so, as for a docker tag,
// --insecure-options=image is needed. Nothing is remembered under the
// path (the file may change); the manifest digest is, so an image already
// converted is not converted again.
type ociSource struct {
	f       *Fetcher
	raw     string
	path    string
	ref     string
	archive bool
}

// Bounds of what a layout's JSON files may weigh, and of a tarball's
// entries.
const (
	maxOCIJSON    = 4 << 20
	maxOCIEntries = 1 << 16
)

// The index annotations that name an image: OCI's ref.name (a tag or a
// full name), and containerd's, where containerd and docker save put the
// full name (ref.name then holds only the tag).
const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

func newOCISource(f *Fetcher, r *Ref, _ string) (source, error) {
	if !f.opts.Insecure.Image {
		return nil, &trust.VerifyError{Name: r.Raw, Err: trust.ErrUnsigned,
			Detail: "OCI image layouts carry no signature rkt can check; use --insecure-options=image"}
	}
	return &ociSource{f: f, raw: r.Raw, path: r.Path, ref: r.OCIRef, archive: r.Kind == KindOCIArchive}, nil
}

func (s *ociSource) cacheKey() (string, bool) { return "", false }

func (s *ociSource) expect() expectation { return expectation{what: s.raw} }

func (s *ociSource) signature(context.Context) ([]byte, bool, error) {
	return nil, false, errors.New("OCI layouts have no signature") // refused by newOCISource
}

func (s *ociSource) open(ctx context.Context, _ *store.Remote) (*stream, error) {
	var files ociFiles
	if s.archive {
		f, err := os.Open(s.path)
		if err != nil {
			return nil, fmt.Errorf("opening OCI archive %s: %w", s.path, err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("opening OCI archive %s: %w", s.path, err)
		}
		t, err := indexOCITar(io.NewSectionReader(f, 0, fi.Size()))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("OCI archive %s: %w", s.path, err)
		}
		t.closer = f
		files = t
	} else {
		files = ociDir(s.path)
	}
	img, name, err := readOCILayout(files, s.ref, docker.HostPlatform(), defaultOCIName(s.path))
	if err != nil {
		files.Close()
		return nil, fmt.Errorf("%s: %w", s.raw, err)
	}
	ref, err := docker.ParseReference(name)
	if err != nil {
		files.Close()
		return nil, fmt.Errorf("%s: image name %q: %v: %w", s.raw, name, err, ErrBadReference)
	}
	im, err := docker.FromImage(ref, img, docker.Options{WorkDir: s.f.opts.DownloadDir, Progress: layerProgress{s.f.prog}})
	if err != nil {
		files.Close()
		return nil, err
	}
	st := s.f.convertedStream(ctx, im, "OCI image "+s.raw, "oci:"+ref.String()+"@"+im.Digest.String())
	end := st.end
	st.end = func(info *store.ImageInfo, keep bool) {
		end(info, keep)
		files.Close()
	}
	return st, nil
}

// defaultOCIName names an image whose layout gives no full name, as
// podman does: localhost/<file name without extensions>.
func defaultOCIName(p string) string {
	base := strings.ToLower(filepath.Base(filepath.Clean(p)))
	if i := strings.IndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	base = strings.Trim(nonRepoChars.ReplaceAllString(base, "-"), "-._")
	if base == "" {
		base = "image"
	}
	return "localhost/" + base
}

var nonRepoChars = regexp.MustCompile(`[^a-z0-9._-]+`)

// ociFiles reads the files of a layout: "oci-layout", "index.json" and
// "blobs/<algorithm>/<hex>".
type ociFiles interface {
	Open(name string) (io.ReadCloser, error)
	Close() error
}

type ociDir string

func (d ociDir) Open(name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), filepath.FromSlash(name)))
}

func (ociDir) Close() error { return nil }

// ociTar is a layout tarball indexed by entry: each file is read in place.
type ociTar struct {
	entries map[string]*io.SectionReader
	closer  io.Closer
}

// indexOCITar lists the regular files of a tarball with their offsets,
// skipping their contents. Only the names a layout uses are kept.
func indexOCITar(r *io.SectionReader) (*ociTar, error) {
	t := &ociTar{entries: map[string]*io.SectionReader{}}
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if n > maxOCIEntries {
			return nil, fmt.Errorf("more than %d entries: not an image layout", maxOCIEntries)
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the tarball: %w", err)
		}
		if h.Typeflag != tar.TypeReg || h.Size < 0 {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name != "oci-layout" && name != "index.json" && !strings.HasPrefix(name, "blobs/") {
			continue
		}
		// tar.Reader reads headers block by block from r and seeks over
		// contents: r's offset is where this entry's data starts.
		off, err := r.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		if off+h.Size > r.Size() {
			return nil, fmt.Errorf("entry %s is cut short", name)
		}
		t.entries[name] = io.NewSectionReader(r, off, h.Size)
	}
	if len(t.entries) == 0 {
		return nil, errors.New("no OCI image layout in the tarball (a docker save archive? it needs docker 25 or later)")
	}
	return t, nil
}

func (t *ociTar) Open(name string) (io.ReadCloser, error) {
	e, ok := t.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
	}
	return io.NopCloser(io.NewSectionReader(e, 0, e.Size())), nil
}

func (t *ociTar) Close() error {
	if t.closer != nil {
		return t.closer.Close()
	}
	return nil
}

// readOCILayout reads a layout's index and picks the image ref names (the
// only one when ref is ""), following a nested index to the platform's
// image. It returns the image and its docker-style name: the layout's full
// name when it has one, else defaultName with the tag ref.name gives (or
// "latest").
func readOCILayout(files ociFiles, ref string, platform *v1.Platform, defaultName string) (v1.Image, string, error) {
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	raw, err := readAll(files, "oci-layout", maxOCIJSON)
	if err != nil {
		return nil, "", fmt.Errorf("not an OCI image layout: %w", err)
	}
	if err := json.Unmarshal(raw, &layout); err != nil || layout.Version == "" {
		return nil, "", fmt.Errorf("not an OCI image layout: oci-layout is not {\"imageLayoutVersion\": ...}")
	}
	raw, err = readAll(files, "index.json", maxOCIJSON)
	if err != nil {
		return nil, "", fmt.Errorf("reading the layout's index: %w", err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, "", fmt.Errorf("reading the layout's index: %w", err)
	}
	desc, err := pickOCIManifest(idx, ref)
	if err != nil {
		return nil, "", err
	}
	name := ociName(desc, defaultName)
	for depth := 0; desc.MediaType.IsIndex(); depth++ {
		if depth > 4 {
			return nil, "", errors.New("indexes nested too deep")
		}
		raw, err := readBlob(files, desc, maxOCIJSON)
		if err != nil {
			return nil, "", err
		}
		sub, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, "", fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		if desc, err = pickPlatform(sub, platform); err != nil {
			return nil, "", err
		}
	}
	if !desc.MediaType.IsImage() {
		return nil, "", fmt.Errorf("%s is a %q, not an image manifest", desc.Digest, desc.MediaType)
	}
	manifest, err := readBlob(files, desc, maxOCIJSON)
	if err != nil {
		return nil, "", err
	}
	m, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	config, err := readBlob(files, m.Config, maxOCIJSON)
	if err != nil {
		return nil, "", err
	}
	img, err := partial.CompressedToImage(&ociImage{files: files, mediaType: desc.MediaType, manifest: manifest, m: m, config: config})
	if err != nil {
		return nil, "", err
	}
	return img, name, nil
}

// pickOCIManifest finds ref among the index's manifests.
func pickOCIManifest(idx *v1.IndexManifest, ref string) (v1.Descriptor, error) {
	var names []string
	var found []v1.Descriptor
	for _, d := range idx.Manifests {
		n := d.Annotations[annotationRefName]
		if n != "" {
			names = append(names, n)
		}
		if ref == "" || n == ref || d.Annotations[annotationContainerdName] == ref {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(idx.Manifests) == 0:
		return v1.Descriptor{}, errors.New("the layout's index lists no image")
	case ref == "":
		return v1.Descriptor{}, fmt.Errorf("the layout holds %d images (%s): name one with :REF", len(idx.Manifests), strings.Join(names, ", "))
	case len(found) == 0:
		return v1.Descriptor{}, fmt.Errorf("no image named %q in the layout (it has: %s)", ref, strings.Join(names, ", "))
	}
	return v1.Descriptor{}, fmt.Errorf("%d images are named %q in the layout", len(found), ref)
}

// ociName is the docker-style name of the image desc describes.
func ociName(desc v1.Descriptor, defaultName string) string {
	if n := desc.Annotations[annotationContainerdName]; n != "" {
		return n
	}
	n := desc.Annotations[annotationRefName]
	if strings.ContainsAny(n, "/:@") {
		return n // a full name ("quay.io/org/app:1.0", "app:1.0")
	}
	if n == "" {
		n = "latest"
	}
	return defaultName + ":" + n
}

// pickPlatform picks the image for platform from a multi-platform index.
func pickPlatform(idx *v1.IndexManifest, platform *v1.Platform) (v1.Descriptor, error) {
	var have []string
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			continue
		}
		if d.Platform.Satisfies(*platform) {
			return d, nil
		}
		have = append(have, d.Platform.String())
	}
	return v1.Descriptor{}, fmt.Errorf("no image for %s in the index (it has: %s)", platform, strings.Join(have, ", "))
}

// readAll reads a small file of the layout whole.
func readAll(files ociFiles, name string, limit int64) ([]byte, error) {
	rc, err := files.Open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %s", name, byteSize(limit))
	}
	return b, nil
}

// readBlob reads a small blob whole and checks it against its descriptor.
func readBlob(files ociFiles, d v1.Descriptor, limit int64) ([]byte, error) {
	if d.Size > limit {
		return nil, fmt.Errorf("blob %s: %s, more than %s", d.Digest, byteSize(d.Size), byteSize(limit))
	}
	rc, err := openBlob(files, d.Digest, d.Size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// openBlob opens a blob that fails its last read unless it has the size
// and the sha256 digest given.
func openBlob(files ociFiles, h v1.Hash, size int64) (io.ReadCloser, error) {
	if size < 0 {
		return nil, fmt.Errorf("blob %s: negative size %d", h, size)
	}
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return nil, fmt.Errorf("blob %s: only sha256 digests are supported", h)
	}
	rc, err := files.Open("blobs/sha256/" + h.Hex)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	return &digestReader{rc: rc, h: sha256.New(), want: h, left: size}, nil
}

type digestReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want v1.Hash
	left int64
}

func (d *digestReader) Read(p []byte) (int, error) {
	if int64(len(p)) > d.left+1 {
		p = p[:d.left+1]
	}
	n, err := d.rc.Read(p)
	d.h.Write(p[:n])
	d.left -= int64(n)
	if d.left < 0 {
		return n, fmt.Errorf("blob %s: longer than its descriptor says", d.want)
	}
	if err == io.EOF {
		if d.left > 0 {
			return n, fmt.Errorf("blob %s: %d bytes short: %w", d.want, d.left, io.ErrUnexpectedEOF)
		}
		if got := hex.EncodeToString(d.h.Sum(nil)); got != d.want.Hex {
			return n, fmt.Errorf("blob %s: its content has digest sha256:%s", d.want, got)
		}
	}
	return n, err
}

func (d *digestReader) Close() error { return d.rc.Close() }

// ociImage is go-containerregistry's view of a layout's image.
type ociImage struct {
	files     ociFiles
	mediaType ggcrtypes.MediaType
	manifest  []byte
	m         *v1.Manifest
	config    []byte
}

func (i *ociImage) RawConfigFile() ([]byte, error)          { return i.config, nil }
func (i *ociImage) MediaType() (ggcrtypes.MediaType, error) { return i.mediaType, nil }
func (i *ociImage) RawManifest() ([]byte, error)            { return i.manifest, nil }
func (i *ociImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range i.m.Layers {
		if l.Digest == h {
			return &ociLayer{files: i.files, d: l}, nil
		}
	}
	return nil, fmt.Errorf("layer %s: not in the manifest", h)
}

type ociLayer struct {
	files ociFiles
	d     v1.Descriptor
}

func (l *ociLayer) Digest() (v1.Hash, error)                { return l.d.Digest, nil }
func (l *ociLayer) Size() (int64, error)                    { return l.d.Size, nil }
func (l *ociLayer) MediaType() (ggcrtypes.MediaType, error) { return l.d.MediaType, nil }
func (l *ociLayer) Compressed() (io.ReadCloser, error) {
	return openBlob(l.files, l.d.Digest, l.d.Size)
}
