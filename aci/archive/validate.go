package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/appc/spec/schema"
)

// Names of the two top-level entries of an ACI.
const (
	ManifestName = "manifest"
	RootfsName   = "rootfs"
)

// MaxManifestSize bounds the manifest read into memory.
const MaxManifestSize = 4 << 20

// Entry is one validated entry of an ACI, handed to an EntryFunc before the
// next entry is read.
type Entry struct {
	// Name is the cleaned name: "manifest", "rootfs" or "rootfs/...".
	Name   string
	Header *tar.Header
	// Body is the content of a regular file (the manifest included).
	Body io.Reader
	// Manifest is set on the manifest entry only.
	Manifest *schema.ImageManifest
}

// EntryFunc receives each entry of an archive as Scan validates it.
type EntryFunc func(*Entry) error

// Image is what Scan learnt about a valid ACI.
type Image struct {
	Manifest    *schema.ImageManifest
	RawManifest []byte // the manifest exactly as stored in the image
}

// kinds of paths the validator tracks.
const (
	kindDir      byte = 'd'
	kindImplicit byte = 'i' // a directory implied by a deeper entry
	kindReg      byte = 'f'
	kindSymlink  byte = 'l'
	kindHardlink byte = 'h'
)

// Validator checks the entries of one ACI tar stream, in order. It keeps one
// small record per path, so memory grows with the number of entries, never
// with their size.
type Validator struct {
	// MaxRenderedSize bounds the sum of the sizes of the image's regular
	// files (hardlinks counted once, sparse files at their full size): what
	// rendering or copying the tree may cost. 0 means no limit.
	MaxRenderedSize int64
	rendered        int64

	seen      map[string]byte
	manifest  *schema.ImageManifest
	raw       []byte
	hasRootfs bool
}

// RenderedSize is the sum so far of the sizes of the regular files.
func (v *Validator) RenderedSize() int64 { return v.rendered }

// NewValidator returns a Validator for one archive.
func NewValidator() *Validator {
	return &Validator{seen: make(map[string]byte, 1024)}
}

func unsafeEntry(name, reason string) error {
	return &EntryError{Entry: name, Reason: reason, Err: ErrUnsafeEntry}
}

// cleanName checks a name (or a hardlink target) found in the archive and
// returns it cleaned. "." is returned for the archive root itself.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", unsafeEntry(name, "empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", unsafeEntry(name, "absolute path")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", unsafeEntry(name, "path escapes the rootfs")
		}
	}
	return path.Clean(name), nil
}

// Check validates the header of the next entry and returns its cleaned name,
// or "" for an entry to skip (the "./" directory some tar tools add). It
// does not read the body: the manifest's body goes to CheckManifest.
func (v *Validator) Check(hdr *tar.Header) (string, error) {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return "", err
	}
	if err := checkName(hdr.Name, name); err != nil {
		return "", err
	}
	if err := checkHeader(hdr); err != nil {
		return "", err
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return "", nil
		}
		return "", unsafeEntry(hdr.Name, "entry outside manifest and rootfs")
	}
	switch {
	case name == ManifestName:
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tarTypeRegA {
			return "", &EntryError{Entry: hdr.Name, Reason: "manifest is not a regular file", Err: ErrInvalidManifest}
		}
	case name == RootfsName:
		if hdr.Typeflag != tar.TypeDir {
			return "", unsafeEntry(hdr.Name, "rootfs is not a directory")
		}
	case strings.HasPrefix(name, RootfsName+"/"):
	default:
		return "", unsafeEntry(hdr.Name, "entry outside manifest and rootfs")
	}

	if k, ok := v.seen[name]; ok {
		if !(k == kindImplicit && hdr.Typeflag == tar.TypeDir) {
			return "", &EntryError{Entry: hdr.Name, Reason: "path already in the archive", Err: ErrDuplicateEntry}
		}
	}
	// Every parent must be a directory: one that is a symlink of this
	// archive would make the entry land wherever the symlink points.
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		switch k, ok := v.seen[d]; {
		case !ok:
			v.seen[d] = kindImplicit
		case k == kindSymlink:
			return "", unsafeEntry(hdr.Name, fmt.Sprintf("parent %q is a symlink", d))
		case k != kindDir && k != kindImplicit:
			return "", unsafeEntry(hdr.Name, fmt.Sprintf("parent %q is not a directory", d))
		}
	}

	var kind byte
	switch hdr.Typeflag {
	case tar.TypeReg, tarTypeRegA, tar.TypeGNUSparse:
		kind = kindReg
		if hdr.Size < 0 {
			return "", &EntryError{Entry: hdr.Name, Reason: "negative size", Err: ErrCorrupt}
		}
		v.rendered += hdr.Size
		if v.MaxRenderedSize > 0 && (v.rendered > v.MaxRenderedSize || v.rendered < 0) {
			return "", &EntryError{Entry: hdr.Name,
				Reason: fmt.Sprintf("the image's files add up to more than the rendered-size limit of %s", FormatSize(v.MaxRenderedSize)),
				Err:    ErrTooLarge}
		}
	case tar.TypeDir:
		kind = kindDir
	case tar.TypeSymlink:
		if err := checkSymlink(name, hdr); err != nil {
			return "", err
		}
		kind = kindSymlink
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil || !strings.HasPrefix(target, RootfsName+"/") {
			return "", unsafeEntry(hdr.Name, fmt.Sprintf("hardlink target %q is outside the rootfs", hdr.Linkname))
		}
		if v.seen[target] != kindReg {
			return "", unsafeEntry(hdr.Name, fmt.Sprintf("hardlink target %q is not an earlier regular file", hdr.Linkname))
		}
		kind = kindHardlink
	case tar.TypeChar, tar.TypeBlock:
		return "", unsafeEntry(hdr.Name, "device node")
	case tar.TypeFifo:
		return "", unsafeEntry(hdr.Name, "fifo")
	default:
		return "", unsafeEntry(hdr.Name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
	}
	v.seen[name] = kind
	if name == RootfsName || strings.HasPrefix(name, RootfsName+"/") {
		v.hasRootfs = true
	}
	return name, nil
}

// checkSymlink refuses a relative symlink that climbs above the rootfs.
// Absolute targets are fine: in the pod they resolve inside the rootfs.
func checkSymlink(name string, hdr *tar.Header) error {
	if name == RootfsName {
		return unsafeEntry(hdr.Name, "rootfs is a symlink")
	}
	if strings.HasPrefix(hdr.Linkname, "/") {
		return nil
	}
	resolved := path.Join(path.Dir(name), hdr.Linkname)
	if resolved != RootfsName && !strings.HasPrefix(resolved, RootfsName+"/") {
		return unsafeEntry(hdr.Name, fmt.Sprintf("symlink target %q escapes the rootfs", hdr.Linkname))
	}
	return nil
}

// CheckManifest reads and validates the manifest's body.
func (v *Validator) CheckManifest(body io.Reader) (*schema.ImageManifest, []byte, error) {
	raw, err := io.ReadAll(io.LimitReader(body, MaxManifestSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading manifest: %w", corrupt(err))
	}
	if len(raw) > MaxManifestSize {
		return nil, nil, &EntryError{Entry: ManifestName, Reason: fmt.Sprintf("larger than %d bytes", MaxManifestSize), Err: ErrInvalidManifest}
	}
	var m schema.ImageManifest
	if err := unmarshalManifest(&m, raw); err != nil {
		reason := strings.TrimSpace(strings.ReplaceAll(err.Error(), "\n", " "))
		return nil, nil, &EntryError{Entry: ManifestName, Reason: reason, Err: ErrInvalidManifest}
	}
	// appc checks some fields (empty label names...) only when writing:
	// a manifest that cannot be written again is refused here.
	if _, err := m.MarshalJSON(); err != nil {
		reason := strings.ReplaceAll(err.Error(), "json: error calling MarshalJSON for type ", "")
		return nil, nil, &EntryError{Entry: ManifestName, Reason: reason, Err: ErrInvalidManifest}
	}
	if err := checkSelfDependency(&m); err != nil {
		return nil, nil, err
	}
	v.manifest, v.raw = &m, raw
	return &m, raw, nil
}

// Finish checks what can only be known at the end of the archive.
func (v *Validator) Finish() (*Image, error) {
	if v.manifest == nil {
		return nil, fmt.Errorf("image has no manifest: %w", ErrInvalidManifest)
	}
	if !v.hasRootfs {
		return nil, fmt.Errorf("image has no rootfs: %w", ErrInvalidLayout)
	}
	return &Image{Manifest: v.manifest, RawManifest: v.raw}, nil
}

// corrupt marks read errors of the tar stream as ErrCorrupt, unless they
// are errors of the caller's reader (already wrapped or of another kind).
func corrupt(err error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) || errors.Is(err, tar.ErrInsecurePath) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// Scan reads one uncompressed ACI tar stream, validating every entry, and
// hands each valid entry to fn (which may be nil) before reading the next.
// Bodies fn leaves unread are skipped. Scan stops at the end-of-archive
// marker: a caller hashing the stream must read what follows it itself.
func Scan(r io.Reader, fn EntryFunc) (*Image, error) {
	return NewValidator().Scan(r, fn)
}

// Scan is the package's Scan with the limits set on v.
func (v *Validator) Scan(r io.Reader, fn EntryFunc) (*Image, error) {
	tail := &trailerReader{r: r}
	tr := tar.NewReader(tail)
	for {
		tail.record = tail.record[:0]
		tail.recording = true
		hdr, err := tr.Next()
		tail.recording = false
		if err == io.EOF {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			// Check names the entry and the reason better.
			err = nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar entry: %w", corrupt(err))
		}
		name, err := v.Check(hdr)
		if err != nil {
			return nil, err
		}
		if name == "" {
			continue
		}
		if isSparse(hdr) {
			if err := checkSparse(hdr, tail.record); err != nil {
				return nil, err
			}
		}
		e := &Entry{Name: name, Header: hdr, Body: tr}
		if name == ManifestName {
			m, raw, err := v.CheckManifest(tr)
			if err != nil {
				return nil, err
			}
			e.Body, e.Manifest = bytes.NewReader(raw), m
		}
		if fn != nil {
			if err := fn(e); err != nil {
				return nil, err
			}
		}
	}
	if !tail.ended() {
		return nil, fmt.Errorf("reading tar: no end-of-archive marker: %w: %w", ErrCorrupt, io.ErrUnexpectedEOF)
	}
	return v.Finish()
}

// trailerReader remembers the last 512-byte block the tar reader consumed.
// archive/tar takes a stream cut at an entry boundary for a complete
// archive; its end-of-archive marker (zero blocks) tells the two apart.
//
// While recording, it also keeps the last bytes read (at least
// maxRecord): those of the headers of the entry being read.
type trailerReader struct {
	r         io.Reader
	total     int64
	last      [512]byte // the last len(last) bytes read, in order
	recording bool
	record    []byte
}

// maxRecord covers the largest sparse map archive/tar reads (1 MiB).
const maxRecord = 2 << 20

func (t *trailerReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if t.recording && n > 0 {
		if len(t.record)+n > 2*maxRecord {
			keep := t.record[len(t.record)-maxRecord:]
			t.record = append(t.record[:0], keep...)
		}
		t.record = append(t.record, p[:n]...)
	}
	if n >= len(t.last) {
		copy(t.last[:], p[n-len(t.last):n])
	} else if n > 0 {
		copy(t.last[:], t.last[n:])
		copy(t.last[len(t.last)-n:], p[:n])
	}
	t.total += int64(n)
	return n, err
}

// ended tells whether the stream read so far ends with a zero block on a
// block boundary (tar writers add two; one is enough for archive/tar).
func (t *trailerReader) ended() bool {
	if t.total < int64(len(t.last)) || t.total%int64(len(t.last)) != 0 {
		return false
	}
	for _, b := range t.last {
		if b != 0 {
			return false
		}
	}
	return true
}

// Validate reads a whole uncompressed ACI tar stream and checks it.
func Validate(r io.Reader) (*Image, error) {
	return Scan(r, nil)
}

// tarTypeRegA is the pre-POSIX type flag ('\x00') of a regular file. Go's
// reader turns it into TypeReg for most entries, but old ACIs still carry it,
// so it is named here rather than through the deprecated tar.TypeRegA.
const tarTypeRegA = '\x00'

// checkSelfDependency refuses an image listing itself among its
// dependencies: the same name, with labels its own match.
func checkSelfDependency(m *schema.ImageManifest) error {
	for _, d := range m.Dependencies {
		if d.ImageName != m.Name || d.ImageID != nil {
			continue
		}
		self := true
		for _, l := range d.Labels {
			if v, ok := m.GetLabel(l.Name.String()); !ok || v != l.Value {
				self = false
			}
		}
		if self {
			return &EntryError{Entry: ManifestName, Reason: fmt.Sprintf("image %s depends on itself", m.Name), Err: ErrInvalidManifest}
		}
	}
	return nil
}

// unmarshalManifest is m.UnmarshalJSON turning a panic of appc's parser
// (it dereferences the missing value of an isolator: FuzzImageManifest)
// into an error: a manifest is outside input.
func unmarshalManifest(m *schema.ImageManifest, raw []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the appc manifest parser failed on it: %v", r)
		}
	}()
	return m.UnmarshalJSON(raw)
}
