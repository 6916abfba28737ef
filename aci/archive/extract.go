package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Extractor writes validated ACI entries below a destination directory,
// through an os.Root: whatever the entries say, nothing is created, opened
// or changed outside it, symlinks included. Several images may be extracted
// one after the other into the same destination (dependency layering):
//
//   - a directory may be written twice; the later entry's metadata wins;
//   - a later file, symlink or directory replaces whatever an earlier image
//     put at its path, and a symlink in the way of a later entry's parent is
//     replaced by a directory, never followed;
//   - a hardlink is made only when its target was written by the same image
//     (with a filter, the target may have been left out: the link is too).
//
// Directory metadata (owner, mode, mtime) is applied by Close, once nothing
// more is written into them. Small files are written by worker goroutines
// (parallel.go): an error writing one may be returned by a later Entry, or
// by Close. An Extractor is not safe for concurrent use.
type Extractor struct {
	// MaxRenderedSize bounds the sum of the sizes of the regular files
	// written, over all images added (ErrTooLarge past it); 0: no limit.
	MaxRenderedSize int64
	written         int64

	root   *os.Root
	dst    string
	made   map[string]byte        // what this extractor put at each path
	image  map[string]bool        // regular files of the current image
	dirs   map[string]*tar.Header // deferred directory metadata
	parent map[string]*os.Root    // open parent directories, by path
	buf    []byte
	owner  bool // chown failures are errors (we are root)
	// uid and gid new files get, when no setgid directory is involved:
	// files meant to be theirs need no chown.
	uid, gid  int
	skipChown bool
	// Workers writing small files (parallel.go); nil until the first.
	async      *asyncWriter
	noAsync    bool
	parentFile map[string]dirFile // directory descriptors for the workers
	umask      int                // the process's, -1 if unknown
}

// maxOpenParents bounds the directory handles kept open for speed. Images
// often interleave their directories (a file here, one there), so a cache
// smaller than the directories in use misses on every file, each miss
// costing an open per path component: 256 covers common images, and a full
// cache drops one handle rather than all of them.
const maxOpenParents = 256

// NewExtractor returns an Extractor writing below dst, which must exist.
func NewExtractor(dst string) (*Extractor, error) {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return nil, fmt.Errorf("opening extraction root: %w", err)
	}
	// Directories made here get their setgid bit only in Close, so during
	// extraction only a setgid dst can give new files another group.
	fi, err := root.Stat(".")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("opening extraction root: %w", err)
	}
	return &Extractor{
		uid:        os.Geteuid(),
		gid:        os.Getegid(),
		skipChown:  fi.Mode()&fs.ModeSetgid == 0,
		root:       root,
		dst:        dst,
		made:       make(map[string]byte, 1024),
		image:      make(map[string]bool),
		dirs:       make(map[string]*tar.Header),
		parent:     make(map[string]*os.Root),
		parentFile: make(map[string]dirFile),
		umask:      creationUmask(dst),
		buf:        make([]byte, 1<<20),
		owner:      os.Geteuid() == 0,
	}, nil
}

// Extract validates the uncompressed ACI tar stream r and extracts it into
// dst, keeping only the entries whose cleaned names are in filter (all of
// them when filter is nil). On error dst holds a partial tree: extract into
// a scratch directory and discard it on failure.
func Extract(r io.Reader, dst string, filter map[string]struct{}) (*Image, error) {
	x, err := NewExtractor(dst)
	if err != nil {
		return nil, err
	}
	img, err := x.Add(r, filter)
	if cerr := x.Close(); err == nil && cerr != nil {
		return nil, cerr
	}
	return img, err
}

// Add validates and extracts one more image (an uncompressed tar stream),
// keeping only the entries named in filter, or all when filter is nil.
func (x *Extractor) Add(r io.Reader, filter map[string]struct{}) (*Image, error) {
	x.BeginImage()
	return Scan(r, func(e *Entry) error {
		if filter != nil {
			if _, ok := filter[e.Name]; !ok {
				return nil
			}
		}
		return x.Entry(e)
	})
}

// BeginImage starts a new image for callers feeding Entry themselves:
// hardlinks may only point at regular files of the same image.
func (x *Extractor) BeginImage() {
	clear(x.image)
}

// Entry writes one validated entry. Callers that do not use Add must pass
// entries from Scan (or checked by a Validator), in archive order.
func (x *Extractor) Entry(e *Entry) error {
	if err := x.entry(e); err != nil {
		var ae *asyncError
		if errors.As(err, &ae) {
			return ae.err // it names its own file
		}
		if errors.Is(err, ErrCorrupt) {
			return fmt.Errorf("extracting %q: %w", e.Name, err)
		}
		return fmt.Errorf("extracting %q into %s: %w", e.Name, x.dst, err)
	}
	return nil
}

func (x *Extractor) entry(e *Entry) error {
	if x.async != nil && x.async.failed.Load() {
		return x.drain()
	}
	name, hdr := e.Name, e.Header
	dir, base := path.Split(name)
	dir = path.Clean(dir)
	if err := x.mkParents(dir); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		switch k, ok := x.made[name]; {
		case ok && k == kindDir:
		case ok:
			if err := x.remove(name); err != nil {
				return err
			}
			fallthrough
		default:
			if err := x.mkdir(dir, base, 0o700); err != nil {
				return err
			}
		}
		x.dirs[name] = hdr
		return nil
	case tar.TypeSymlink:
		if err := x.clear(name); err != nil {
			return err
		}
		pr, err := x.parentRoot(dir)
		if err != nil {
			return err
		}
		if err := pr.Symlink(hdr.Linkname, base); err != nil {
			return err
		}
		x.made[name] = kindSymlink
		return x.chown(pr.Lchown(base, hdr.Uid, hdr.Gid))
	case tar.TypeLink:
		target := path.Clean(hdr.Linkname)
		if !x.image[target] {
			return nil
		}
		// The target may still be queued.
		if err := x.drain(); err != nil {
			return err
		}
		if err := x.clear(name); err != nil {
			return err
		}
		if err := x.root.Link(target, name); err != nil {
			return err
		}
		x.made[name] = kindHardlink
		return nil
	default: // regular files; the validator let nothing else through
		if x.written += hdr.Size; x.MaxRenderedSize > 0 && x.written > x.MaxRenderedSize {
			return fmt.Errorf("the image's files and its dependencies' add up to more than the rendered-size limit of %s: %w",
				FormatSize(x.MaxRenderedSize), ErrTooLarge)
		}
		if err := x.clear(name); err != nil {
			return err
		}
		if err := x.writeFile(name, dir, base, hdr, e.Body); err != nil {
			return err
		}
		x.made[name] = kindReg
		x.image[name] = true
		return nil
	}
}

// mkParents makes sure every directory down to dir is a directory this
// extractor made, creating missing ones 0755 and replacing non-directories.
func (x *Extractor) mkParents(dir string) error {
	if dir == "." {
		return nil
	}
	if k := x.made[dir]; k == kindDir {
		return nil
	}
	if err := x.mkParents(path.Dir(dir)); err != nil {
		return err
	}
	switch k, ok := x.made[dir]; {
	case ok && k == kindDir:
		return nil
	case ok:
		if err := x.remove(dir); err != nil {
			return err
		}
	}
	parent, base := path.Split(dir)
	return x.mkdir(path.Clean(parent), base, 0o755)
}

// mkdir creates dir/base, replacing anything but a directory that was
// there before the extractor started.
func (x *Extractor) mkdir(dir, base string, perm os.FileMode) error {
	pr, err := x.parentRoot(dir)
	if err != nil {
		return err
	}
	err = pr.Mkdir(base, perm)
	if errors.Is(err, fs.ErrExist) {
		var fi os.FileInfo
		if fi, err = pr.Lstat(base); err == nil && !fi.IsDir() {
			if err = pr.Remove(base); err == nil {
				err = pr.Mkdir(base, perm)
			}
		}
	}
	if err != nil {
		return err
	}
	x.made[path.Join(dir, base)] = kindDir
	return nil
}

// clear removes what an earlier entry (of an earlier image) put at name.
func (x *Extractor) clear(name string) error {
	if _, ok := x.made[name]; !ok {
		return nil
	}
	return x.remove(name)
}

func (x *Extractor) remove(name string) error {
	// What is removed may be a file still queued, or hold some.
	if err := x.drain(); err != nil {
		return err
	}
	dir, base := path.Split(name)
	isDir := x.made[name] == kindDir
	if isDir {
		// Handles on the directory or below it would outlive it.
		x.closeParents()
	}
	pr, err := x.parentRoot(path.Clean(dir))
	if err != nil {
		return err
	}
	if !isDir {
		delete(x.made, name)
		delete(x.image, name)
		return pr.Remove(base)
	}
	// Forget the records of the directory's content.
	prefix := name + "/"
	for p := range x.made {
		if strings.HasPrefix(p, prefix) {
			delete(x.made, p)
			delete(x.image, p)
			delete(x.dirs, p)
		}
	}
	delete(x.made, name)
	delete(x.dirs, name)
	return pr.RemoveAll(base)
}

// parentRoot returns a handle on directory dir, so that operations on its
// entries resolve one path component instead of the whole path.
func (x *Extractor) parentRoot(dir string) (*os.Root, error) {
	if dir == "." || dir == "" {
		return x.root, nil
	}
	if r, ok := x.parent[dir]; ok {
		return r, nil
	}
	r, err := x.root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if len(x.parent) >= maxOpenParents {
		for p, old := range x.parent { // any one: map order is random
			old.Close()
			delete(x.parent, p)
			break
		}
	}
	x.parent[dir] = r
	return r, nil
}

// closeParents closes the parent handles; the workers must be drained.
func (x *Extractor) closeParents() {
	for p, r := range x.parent {
		r.Close()
		delete(x.parent, p)
	}
	for p, f := range x.parentFile {
		f.f.Close()
		delete(x.parentFile, p)
	}
}

// writerOnly hides os.File's ReadFrom so that io.CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }

func (x *Extractor) writeFile(name, dir, base string, hdr *tar.Header, body io.Reader) error {
	pr, err := x.parentRoot(dir)
	if err != nil {
		return err
	}
	if queued, err := x.writeAsync(dir, name, base, hdr, body); queued || err != nil {
		return err
	}
	f, err := createFile(pr, base)
	if err != nil {
		return err
	}
	defer f.Close()
	if isSparse(hdr) {
		err = copySparse(f, readerOnly{body}, hdr.Size, x.buf)
	} else {
		_, err = io.CopyBuffer(writerOnly{f}, readerOnly{body}, x.buf)
	}
	if err != nil {
		return err
	}
	if err := x.setMeta(f, hdr); err != nil {
		return err
	}
	return f.Close()
}

// createFile creates base in pr, replacing what was there before the
// extractor started.
func createFile(pr *os.Root, base string) (*os.File, error) {
	// O_NONBLOCK means nothing to regular files, but spares os.File
	// four fcntl calls per file toggling it (syscalls are dear in VMs).
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL | syscall.O_NONBLOCK
	f, err := pr.OpenFile(base, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		if err = pr.RemoveAll(base); err == nil {
			f, err = pr.OpenFile(base, flags, 0o600)
		}
	}
	return f, err
}

// readerOnly marks errors from the archive side of a copy as corruption, so
// that they are not mistaken for errors writing the destination.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = corrupt(err)
	}
	return n, err
}

// setMeta applies owner, mode (after the owner: chown clears setuid bits),
// extended attributes and times to an open file or directory.
func (x *Extractor) setMeta(f *os.File, hdr *tar.Header) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) { serr = x.setMetaFd(int(fd), hdr, false) })
	if serr != nil {
		serr = &os.PathError{Op: "setting metadata", Path: f.Name(), Err: serr}
	}
	return errors.Join(cerr, serr)
}

// setMetaFd is setMeta on a descriptor; modeSet: it was created with its
// final mode, and needs no chmod unless a chown clears bits.
func (x *Extractor) setMetaFd(fd int, hdr *tar.Header, modeSet bool) error {
	if !x.skipChown || hdr.Uid != x.uid || hdr.Gid != x.gid || hdr.Typeflag == tar.TypeDir {
		if err := x.chown(ignoringEINTR(func() error { return unix.Fchown(fd, hdr.Uid, hdr.Gid) })); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		modeSet = false
	}
	if !modeSet {
		mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if err := ignoringEINTR(func() error { return unix.Fchmod(fd, syscallMode(mode)) }); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		if attr, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if err := unix.Fsetxattr(fd, attr, []byte(v), 0); err != nil && !x.ignorableXattrErr(err) {
				return fmt.Errorf("setting xattr %s: %w", attr, err)
			}
		}
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return futimens(fd, atime, hdr.ModTime)
}

// syscallMode turns a Go file mode into chmod(2)'s bits.
func syscallMode(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		o |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		o |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		o |= unix.S_ISVTX
	}
	return o
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

func (x *Extractor) ignorableXattrErr(err error) bool {
	return err == unix.ENOTSUP || err == unix.EOPNOTSUPP || (!x.owner && err == unix.EPERM)
}

// chown lets an unprivileged extraction (rkt image extract as a user) keep
// its own ownership instead of failing.
func (x *Extractor) chown(err error) error {
	if err != nil && !x.owner && errors.Is(err, syscall.EPERM) {
		return nil
	}
	return err
}

// futimens sets the times of an open file; utimensat(2) with a NULL path
// acts on the fd itself (what glibc's futimens does).
func futimens(fd int, atime, mtime time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return &os.SyscallError{Syscall: "utimensat", Err: errno}
	}
	return nil
}

// Close applies the deferred directory metadata and releases the handles.
func (x *Extractor) Close() error {
	var errs []error
	if err := x.stopAsync(); err != nil {
		errs = append(errs, err)
	}
	for name, hdr := range x.dirs {
		f, err := x.root.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
		if err == nil {
			err = x.setMeta(f, hdr)
			f.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("setting metadata of %q in %s: %w", name, x.dst, err))
		}
	}
	x.closeParents()
	errs = append(errs, x.root.Close())
	return errors.Join(errs...)
}
