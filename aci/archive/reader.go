// Package archive reads, validates and safely extracts ACIs: it undoes the
// compression (NewReader), checks every tar entry in one streaming pass
// (Scan, Validate) and writes rootfs trees that cannot reach outside their
// destination (Extractor, Extract).
//
// Every failure caused by the archive itself wraps one of the sentinels
// below, and names the entry and the reason through an *EntryError.
package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"github.com/appc/spec/aci"
	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"
)

// Categories of archive failures.
var (
	// ErrCorrupt: the stream is not a readable (compressed) tar, or ends early.
	ErrCorrupt = errors.New("corrupt archive")
	// ErrInvalidManifest: the manifest is missing, unreadable or invalid.
	ErrInvalidManifest = errors.New("invalid image manifest")
	// ErrUnsafeEntry: an entry could write outside the rootfs, or is of a
	// kind images may not carry (devices, fifos).
	ErrUnsafeEntry = errors.New("unsafe entry")
	// ErrDuplicateEntry: two entries name the same path.
	ErrDuplicateEntry = errors.New("duplicate entry")
	// ErrInvalidLayout: the image has no rootfs.
	ErrInvalidLayout = errors.New("invalid image layout")
)

// EntryError is a refused entry: Entry is its name as found in the archive.
type EntryError struct {
	Entry  string
	Reason string
	Err    error // one of the sentinels above
}

func (e *EntryError) Error() string {
	name := e.Entry
	if len(name) > maxShownName {
		// Errors stay one line: a 5000-byte name is shown by its ends.
		name = fmt.Sprintf("%s...%s (%d bytes)", name[:maxShownName/2], name[len(name)-maxShownName/4:], len(name))
	}
	return fmt.Sprintf("entry %q: %s: %v", name, e.Reason, e.Err)
}

const maxShownName = 120

// FormatSize shows a byte count the way limits are written: "64GiB".
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return fmt.Sprintf("%d%s", n/u.v, u.s)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

func (e *EntryError) Unwrap() error { return e.Err }

// Compression names what NewReader found.
type Compression string

// Recognised compressions.
const (
	Gzip  Compression = "gzip"
	Bzip2 Compression = "bzip2"
	Xz    Compression = "xz"
	Plain Compression = "tar"
)

// readBufSize is large so that plain tars are read in few syscalls.
const readBufSize = 1 << 20

// NewReader returns the uncompressed tar stream of an ACI compressed with
// gzip, bzip2 or xz (decoded in Go), or of a plain tar. The kind is found by
// magic number. A stream that is none of these, or that turns out truncated
// or corrupt while being read, gives errors wrapping ErrCorrupt; errors of r
// itself are passed through unchanged. Close does not close r.
func NewReader(r io.Reader) (io.ReadCloser, error) {
	rc, _, err := NewReaderKind(r)
	return rc, err
}

// NewReaderKind is NewReader that also tells which compression it found.
func NewReaderKind(r io.Reader) (io.ReadCloser, Compression, error) {
	src := &sourceReader{r: r}
	br := bufio.NewReaderSize(src, readBufSize)
	head, err := br.Peek(512)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		if src.err != nil {
			return nil, "", fmt.Errorf("reading image: %w", err)
		}
		return nil, "", fmt.Errorf("reading image: %w: %w", ErrCorrupt, err)
	}
	ft, err := aci.DetectFileType(bytes.NewReader(head))
	if err != nil {
		return nil, "", fmt.Errorf("detecting image type: %w: %w", ErrCorrupt, err)
	}
	var dec io.Reader
	var closer io.Closer
	var kind Compression
	switch ft {
	case aci.TypeGzip:
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, "", src.wrap(Gzip, err)
		}
		dec, closer, kind = gz, gz, Gzip
	case aci.TypeBzip2:
		dec, kind = bzip2.NewReader(br), Bzip2
	case aci.TypeXz:
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, "", src.wrap(Xz, err)
		}
		dec, kind = xr, Xz
	case aci.TypeTar:
		dec, kind = br, Plain
	default:
		return nil, "", fmt.Errorf("image is not a tar, gzip, bzip2 or xz stream: %w", ErrCorrupt)
	}
	return &decoder{r: dec, closer: closer, src: src, rest: br, kind: kind}, kind, nil
}

// sourceReader remembers the caller's reader's own error, so that a failing
// source (say, a dropped connection) is not reported as a corrupt archive.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (s *sourceReader) wrap(kind Compression, err error) error {
	if s.err != nil && errors.Is(err, s.err) {
		return fmt.Errorf("reading image: %w", err)
	}
	if errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("decompressing %s image: %w", kind, err)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("decompressing %s image: %w: %w", kind, ErrCorrupt, err)
}

type decoder struct {
	r      io.Reader
	closer io.Closer
	src    *sourceReader
	rest   io.Reader // the compressed stream, read to its end at EOF
	kind   Compression
	ended  bool
}

func (d *decoder) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err == io.EOF && !d.ended && d.kind != Plain {
		d.ended = true
		err = d.drain()
	}
	if err != nil && err != io.EOF {
		err = d.src.wrap(d.kind, err)
	}
	return n, err
}

// drain reads what follows the compressed stream, so that the caller's
// reader is consumed to its end (a signature check may be waiting for
// it). Zero padding is tolerated; anything else is corruption.
func (d *decoder) drain() error {
	buf := make([]byte, 32<<10)
	for {
		n, err := d.rest.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return fmt.Errorf("data after the end of the %s stream: %w", d.kind, ErrCorrupt)
			}
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) Close() error {
	if d.closer != nil {
		return d.closer.Close()
	}
	return nil
}
