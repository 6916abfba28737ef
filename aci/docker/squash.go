package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/klauspost/compress/zstd"
)

// WriteACI downloads the image's layers (each checked against its digest
// as it arrives) into WorkDir and writes the squashed ACI, a plain tar with
// the manifest first, to w. The layer files are removed afterwards.
func (im *Image) WriteACI(ctx context.Context, w io.Writer) error {
	m, err := im.ImageManifest()
	if err != nil {
		return err
	}
	layers, err := im.img.Layers()
	if err != nil {
		return describe(im.Ref, "listing layers", err)
	}
	if im.opts.WorkDir != "" {
		if err := os.MkdirAll(im.opts.WorkDir, 0o700); err != nil {
			return fmt.Errorf("docker image %s: creating layer directory: %w", im.Ref.Original, err)
		}
	}
	dir, err := os.MkdirTemp(im.opts.WorkDir, "docker-layers-")
	if err != nil {
		return fmt.Errorf("docker image %s: creating layer directory: %w", im.Ref.Original, err)
	}
	defer os.RemoveAll(dir)
	files := make([]string, len(layers))
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		dg, err := l.Digest()
		if err != nil {
			return describe(im.Ref, "reading layer digest", err)
		}
		size, _ := l.Size()
		files[i] = filepath.Join(dir, fmt.Sprintf("%03d", i))
		if im.opts.Layers.Lookup(dg.String(), size, files[i]) {
			continue
		}
		if err := im.download(l, dg.String(), size, files[i]); err != nil {
			return err
		}
		if im.opts.Layers != nil {
			im.opts.Layers.Keep(dg.String(), files[i])
		}
	}
	if err := Squash(w, m, files); err != nil {
		return fmt.Errorf("docker image %s: %w", im.Ref.Original, err)
	}
	return nil
}

type compressedLayer interface {
	Compressed() (io.ReadCloser, error)
}

func (im *Image) download(l compressedLayer, digest string, size int64, dst string) (err error) {
	var prog LayerProgress = nopProgress{}
	if im.opts.Progress != nil {
		prog = im.opts.Progress.StartLayer(shortDigest(digest), size)
	}
	defer func() { prog.Finish(err) }()
	rc, err := l.Compressed()
	if err != nil {
		return describe(im.Ref, "downloading layer "+digest, err)
	}
	defer rc.Close()
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("docker image %s: saving layer %s: %w", im.Ref.Original, digest, err)
	}
	defer f.Close()
	// The reader checks the digest at EOF: a tampered layer fails here.
	if _, err := io.Copy(f, io.TeeReader(rc, progressWriter{prog})); err != nil {
		return describe(im.Ref, "downloading layer "+digest, err)
	}
	return f.Close()
}

// shortDigest is a layer's digest as rkt's progress named it:
// "sha256:6089112fedd", its first 18 characters.
func shortDigest(d string) string {
	if len(d) > 18 {
		return d[:18]
	}
	return d
}

// LayerDigests are the digests of the image's layers, bottom first.
func (im *Image) LayerDigests() ([]string, error) {
	layers, err := im.img.Layers()
	if err != nil {
		return nil, describe(im.Ref, "listing layers", err)
	}
	out := make([]string, len(layers))
	for i, l := range layers {
		dg, err := l.Digest()
		if err != nil {
			return nil, describe(im.Ref, "reading layer digest", err)
		}
		out[i] = dg.String()
	}
	return out, nil
}

type nopProgress struct{}

func (nopProgress) Add(int)      {}
func (nopProgress) Finish(error) {}

type progressWriter struct{ p LayerProgress }

func (w progressWriter) Write(b []byte) (int, error) {
	w.p.Add(len(b))
	return len(b), nil
}

// openLayer opens a layer file as an uncompressed tar stream, whatever its
// compression (gzip, zstd or none).
func openLayer(file string) (io.ReadCloser, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, err
		}
		return readCloser{gz, func() error { gz.Close(); return f.Close() }}, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			f.Close()
			return nil, err
		}
		return readCloser{zr, func() error { zr.Close(); return f.Close() }}, nil
	}
	return readCloser{br, f.Close}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// whiteout prefixes (AUFS style, as docker and OCI layers use).
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// owner records which layer's entry is the final one for a path.
type owner struct {
	layer, entry int
	dir          bool
}

// Squash writes an ACI tar with manifest m and, as its rootfs, the union of
// the layer tars (lowest first) as docker defines it: an upper entry
// replaces a lower one of the same path; a ".wh.name" file removes name
// from the layers below; ".wh..wh..opq" hides everything below in its
// directory; an upper non-directory hides a lower directory's content.
//
// It reads the layers twice: top-down to find which entry of which layer
// survives, then bottom-up to copy the survivors, so that each directory
// comes before its content and a hard link after its target.
func Squash(w io.Writer, m *schema.ImageManifest, layerFiles []string) error {
	keep, err := survivors(layerFiles)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	mb, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	epoch := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(mb)), Typeflag: tar.TypeReg, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(mb); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	type link struct {
		p   string
		hdr *tar.Header
	}
	emitted := map[string]bool{}
	waiting := map[string][]link{} // hard links waiting for their target
	for i, file := range layerFiles {
		err := walkLayer(file, func(k int, p string, hdr *tar.Header, body io.Reader) error {
			if !keep[i][k] {
				return nil
			}
			h := *hdr
			h.Name = "rootfs/" + p
			if h.Typeflag == tar.TypeDir {
				h.Name += "/"
			}
			if h.Typeflag == tar.TypeLink {
				target := cleanPath(h.Linkname)
				h.Linkname = "rootfs/" + target
				if !emitted[target] {
					waiting[target] = append(waiting[target], link{p, &h})
					return nil
				}
			}
			if err := tw.WriteHeader(&h); err != nil {
				return fmt.Errorf("writing %s: %w", h.Name, err)
			}
			if h.Typeflag == tar.TypeReg {
				if _, err := io.Copy(tw, body); err != nil {
					return fmt.Errorf("copying %s: %w", h.Name, err)
				}
			}
			emitted[p] = true
			for _, l := range waiting[p] {
				if err := tw.WriteHeader(l.hdr); err != nil {
					return fmt.Errorf("writing %s: %w", l.hdr.Name, err)
				}
				emitted[l.p] = true
			}
			delete(waiting, p)
			return nil
		})
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	// Links whose target never came (it was deleted above them) are
	// dropped: they would point at nothing.
	return tw.Close()
}

// survivors reads the layers from the top down and marks, per layer, which
// entries end up in the image. The whiteout and opaque sets only ever hold
// layers above the one being read, since a layer's markers are added after
// it is read.
func survivors(layerFiles []string) ([][]bool, error) {
	keep := make([][]bool, len(layerFiles))
	final := map[string]owner{}   // path -> surviving entry
	whiteout := map[string]bool{} // paths removed by an upper layer
	opaque := map[string]bool{}   // dirs ("" is the root) whose lower content is hidden
	for i := len(layerFiles) - 1; i >= 0; i-- {
		var marks []bool
		layerWhiteouts := map[string]bool{}
		layerOpaque := map[string]bool{}
		err := walkLayer(layerFiles[i], func(k int, p string, hdr *tar.Header, _ io.Reader) error {
			marks = append(marks, false)
			if p == "" {
				return nil
			}
			dir, base := path.Split(p)
			dir = strings.TrimSuffix(dir, "/")
			if base == opaqueMarker {
				layerOpaque[dir] = true
				return nil
			}
			if strings.HasPrefix(base, whiteoutPrefix) {
				layerWhiteouts[path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))] = true
				return nil
			}
			switch hdr.Typeflag {
			case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
				return nil // stage1 provides /dev; appc images carry no nodes
			}
			if hidden(p, i, final, whiteout, opaque) {
				return nil
			}
			if o, ok := final[p]; ok {
				if o.layer != i {
					return nil // an upper layer has this path
				}
				marks[o.entry] = false // a later entry of the same layer wins
			}
			final[p] = owner{layer: i, entry: k, dir: hdr.Typeflag == tar.TypeDir}
			marks[k] = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		keep[i] = marks
		for p := range layerWhiteouts {
			whiteout[p] = true
		}
		for p := range layerOpaque {
			opaque[p] = true
		}
	}
	return keep, nil
}

// hidden tells whether layer i's entry at p is covered by an upper layer:
// removed by a whiteout of it or of a parent, inside a directory made
// opaque above, or under a path that an upper layer made a non-directory.
func hidden(p string, i int, final map[string]owner, whiteout, opaque map[string]bool) bool {
	if whiteout[p] || opaque[""] {
		return true
	}
	for a := parent(p); a != ""; a = parent(a) {
		if whiteout[a] || opaque[a] {
			return true
		}
		if o, ok := final[a]; ok && o.layer > i && !o.dir {
			return true
		}
	}
	return false
}

func parent(p string) string {
	d := path.Dir(p)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

// cleanPath makes a layer entry name relative and clean; "" is the root.
func cleanPath(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

// walkLayer calls fn for every entry of a layer, numbered in order, with
// its cleaned path ("" for the root directory).
func walkLayer(file string, fn func(k int, p string, hdr *tar.Header, body io.Reader) error) error {
	rc, err := openLayer(file)
	if err != nil {
		return fmt.Errorf("opening layer: %w", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for k := 0; ; k++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return fmt.Errorf("reading layer tar: %w", err)
		}
		if err := fn(k, cleanPath(hdr.Name), hdr, tr); err != nil {
			return err
		}
	}
}
