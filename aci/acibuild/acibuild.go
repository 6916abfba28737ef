// Package acibuild writes ACIs from Go: from a list of files (tests), from a
// directory tree (build scripts, through the mkaci command), or as arbitrary
// raw tar entries, malicious ones included, for fault-injection tests.
//
// Output is deterministic: the same inputs give the same bytes and so the
// same image ID, which keeps test fixtures and built stage1 images stable.
package acibuild

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// DefaultModTime is the mtime given to entries built from File values, so
// that builds are reproducible.
var DefaultModTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one entry of an image's rootfs. Path is relative to the rootfs
// ("etc/passwd" or "/etc/passwd"). Type is a tar.Type* constant, 0 meaning a
// regular file. Linkname is the target of a symlink, or for a hardlink the
// rootfs path of the file it links to. Mode holds the permission bits and
// may carry os.ModeSetuid, os.ModeSetgid and os.ModeSticky.
type File struct {
	Path     string
	Mode     os.FileMode
	Data     []byte
	Linkname string
	Uid, Gid int
	Type     byte
}

// Option changes how an image is written.
type Option func(*options)

type options struct {
	gzip          bool
	preserveOwner bool
	modTime       time.Time
}

// WithGzip compresses the ACI with gzip.
func WithGzip() Option { return func(o *options) { o.gzip = true } }

// PreserveOwner keeps the on-disk owners in BuildFromDir instead of 0:0.
func PreserveOwner() Option { return func(o *options) { o.preserveOwner = true } }

// WithModTime sets the mtime of entries built from File values and of the
// manifest.
func WithModTime(t time.Time) Option { return func(o *options) { o.modTime = t } }

func buildOptions(opts []Option) options {
	o := options{modTime: DefaultModTime}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Manifest returns a valid image manifest named name with the given labels,
// sorted by name so that output stays deterministic.
func Manifest(name string, labels map[string]string) (*schema.ImageManifest, error) {
	id, err := types.NewACIdentifier(name)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w", name, err)
	}
	m := schema.BlankImageManifest()
	m.Name = *id
	lm := make(map[types.ACIdentifier]string, len(labels))
	for k, v := range labels {
		lk, err := types.NewACIdentifier(k)
		if err != nil {
			return nil, fmt.Errorf("label name %q: %w", k, err)
		}
		lm[*lk] = v
	}
	if len(lm) > 0 {
		m.Labels, err = types.LabelsFromMap(lm)
		if err != nil {
			return nil, fmt.Errorf("labels of %q: %w", name, err)
		}
	}
	return m, nil
}

// imageWriter is a tar writer, possibly over gzip, that closes both.
type imageWriter struct {
	*tar.Writer
	gz *gzip.Writer
}

func newImageWriter(w io.Writer, o options) *imageWriter {
	iw := &imageWriter{}
	if o.gzip {
		iw.gz = gzip.NewWriter(w)
		w = iw.gz
	}
	iw.Writer = tar.NewWriter(w)
	return iw
}

func (iw *imageWriter) Close() error {
	err := iw.Writer.Close()
	if iw.gz != nil {
		err = errors.Join(err, iw.gz.Close())
	}
	return err
}

func (iw *imageWriter) writeManifest(m *schema.ImageManifest, mtime time.Time) error {
	data, err := m.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding manifest of %q: %w", m.Name, err)
	}
	hdr := &tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: mtime}
	if err := iw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	if _, err := iw.Write(data); err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	return nil
}

// tarMode converts an os.FileMode to the tar mode bits, keeping the
// setuid/setgid/sticky bits whether given as os.Mode* flags or as raw 07000.
func tarMode(m os.FileMode) int64 {
	mode := int64(m & 0o7777)
	if m&os.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// Build writes an ACI to w: the manifest first, then rootfs/ and the files in
// the given order. A directory is written just before its first child: as
// listed in files if it is (once), else 0755 and owned by root.
func Build(w io.Writer, m *schema.ImageManifest, files []File, opts ...Option) error {
	o := buildOptions(opts)
	iw := newImageWriter(w, o)
	if err := iw.writeManifest(m, o.modTime); err != nil {
		return err
	}
	headers := make([]*tar.Header, len(files))
	listedDirs := map[string]*tar.Header{}
	for i, f := range files {
		rel := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
		if rel == "" {
			return fmt.Errorf("file %q: empty path", f.Path)
		}
		typ := f.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{
			Name: "rootfs/" + rel, Typeflag: typ, Mode: tarMode(f.Mode), Uid: f.Uid, Gid: f.Gid,
			ModTime: o.modTime, Linkname: f.Linkname,
		}
		switch typ {
		case tar.TypeReg:
			hdr.Size = int64(len(f.Data))
		case tar.TypeDir:
			listedDirs[hdr.Name] = hdr
		case tar.TypeLink:
			hdr.Linkname = "rootfs/" + strings.TrimPrefix(path.Clean("/"+f.Linkname), "/")
		}
		headers[i] = hdr
	}
	written := map[string]bool{}
	writeDir := func(name string) error {
		hdr, ok := listedDirs[name]
		if !ok {
			hdr = &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: o.modTime}
		}
		dh := *hdr
		dh.Name += "/"
		if err := iw.WriteHeader(&dh); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		written[name] = true
		return nil
	}
	if err := writeDir("rootfs"); err != nil {
		return err
	}
	for i, hdr := range headers {
		for _, dir := range parents(hdr.Name) {
			if !written[dir] {
				if err := writeDir(dir); err != nil {
					return err
				}
			}
		}
		if hdr.Typeflag == tar.TypeDir {
			if !written[hdr.Name] {
				if err := writeDir(hdr.Name); err != nil {
					return err
				}
			}
			continue
		}
		if err := iw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing %s: %w", hdr.Name, err)
		}
		written[hdr.Name] = true
		if hdr.Size > 0 {
			if _, err := iw.Write(files[i].Data); err != nil {
				return fmt.Errorf("writing %s: %w", hdr.Name, err)
			}
		}
	}
	if err := iw.Close(); err != nil {
		return fmt.Errorf("finishing image %q: %w", m.Name, err)
	}
	return nil
}

// parents lists the ancestors of name below the archive root, outermost
// first: parents("rootfs/a/b") = [rootfs rootfs/a].
func parents(name string) []string {
	var out []string
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		out = append(out, d)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// RawEntry is one tar entry written exactly as given. When Data is set and
// Header.Size is zero, Size is set to len(Data).
type RawEntry struct {
	Header tar.Header
	Data   []byte
}

// RawManifest, RawDir, RawFile and RawLink are the usual entries of a raw
// archive: the manifest, a directory, a regular file and a link of type
// typ (tar.TypeSymlink or tar.TypeLink), with common modes.
func RawManifest(data string) RawEntry {
	return RawEntry{Header: tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644}, Data: []byte(data)}
}

// RawDir is a directory entry (see RawManifest).
func RawDir(name string) RawEntry {
	return RawEntry{Header: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}

// RawFile is a regular file entry (see RawManifest).
func RawFile(name, data string) RawEntry {
	return RawEntry{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, Data: []byte(data)}
}

// RawLink is a link entry of type typ (see RawManifest).
func RawLink(typ byte, name, target string) RawEntry {
	return RawEntry{Header: tar.Header{Name: name, Typeflag: typ, Mode: 0o777, Linkname: target}}
}

// RawEntries writes a plain tar of the given entries with no checks at all,
// so that tests can build the archives a validator must refuse.
func RawEntries(w io.Writer, entries []RawEntry) error {
	tw := tar.NewWriter(w)
	for i := range entries {
		e := entries[i]
		hdr := e.Header
		if hdr.Size == 0 && len(e.Data) > 0 {
			hdr.Size = int64(len(e.Data))
		}
		if hdr.ModTime.IsZero() {
			hdr.ModTime = DefaultModTime
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return fmt.Errorf("writing raw entry %q: %w", hdr.Name, err)
		}
		if len(e.Data) > 0 {
			if _, err := tw.Write(e.Data); err != nil {
				return fmt.Errorf("writing raw entry %q: %w", hdr.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finishing raw tar: %w", err)
	}
	return nil
}
