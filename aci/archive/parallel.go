package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Small regular files are written by a few worker goroutines while the
// extractor goes on reading the archive: creating a file is kernel work
// (an inode, a directory entry, page cache), 0.05-0.3 ms a file on the
// project VM, and an image is mostly small files. The extractor copies
// small files' bodies into batches (one buffer holding several files) and
// hands each full batch to a worker; everything that shapes the tree
// (directories, symlinks, hardlinks, removals) stays in archive order on
// the extractor's goroutine, which waits for the workers (drain) before
// anything that could touch a file still queued: removing a path, linking
// to a file, closing a parent handle, and Close.
//
// Workers make each file with raw system calls on the parent directory's
// descriptor (opened through the os.Root, so confined like the rest):
// openat(O_EXCL|O_NOFOLLOW) of a single name cannot leave the directory,
// and an os.File would add an epoll_ctl per file (regular files are
// offered to the poller and refused). Where the umask lets the file be
// created with its final mode, there is no fchmod either: four calls a
// file (openat, write, utimensat, close).
const (
	asyncBufSize  = 256 << 10 // a batch's buffer; larger files are written inline
	asyncBufs     = 8         // 2 MiB of bodies in flight at most
	asyncBatchMax = 64        // files per batch
)

type fileJob struct {
	dirfd int
	name  string // for errors
	base  string
	hdr   *tar.Header
	data  []byte
}

type fileBatch struct {
	jobs []fileJob
	buf  []byte // the jobs' data, returned to the pool once written
}

type asyncWriter struct {
	jobs    chan *fileBatch
	bufs    chan []byte
	cur     *fileBatch
	mem     []byte // the buffers' mapping
	pending sync.WaitGroup
	failed  atomic.Bool
	mu      sync.Mutex
	err     error // the first worker's error
}

// asyncError carries a worker's error, already naming its file, through
// Entry (which would otherwise name the entry being read instead).
type asyncError struct{ err error }

func (e *asyncError) Error() string { return e.err.Error() }
func (e *asyncError) Unwrap() error { return e.err }

// startAsync starts the workers, once, on the first small file. It leaves
// x.async nil (everything written inline) where the buffers cannot be
// mapped or there is a single CPU.
func (x *Extractor) startAsync() *asyncWriter {
	if x.async != nil || x.noAsync {
		return x.async
	}
	n := min(runtime.GOMAXPROCS(0), 4)
	if n < 2 {
		x.noAsync = true
		return nil
	}
	// Outside the Go heap, as the store's blob buffers: in it they would
	// double the heap the collector lets grow.
	mem, err := unix.Mmap(-1, 0, asyncBufs*asyncBufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		x.noAsync = true
		return nil
	}
	a := &asyncWriter{jobs: make(chan *fileBatch, asyncBufs), bufs: make(chan []byte, asyncBufs), mem: mem}
	for i := range asyncBufs {
		a.bufs <- mem[i*asyncBufSize : i*asyncBufSize : (i+1)*asyncBufSize]
	}
	for range n {
		go a.work(x)
	}
	x.async = a
	return a
}

func (a *asyncWriter) work(x *Extractor) {
	for b := range a.jobs {
		for _, j := range b.jobs {
			if a.failed.Load() {
				break
			}
			if err := x.writeData(j); err != nil {
				a.mu.Lock()
				if a.err == nil {
					a.err = fmt.Errorf("extracting %q into %s: %w", j.name, x.dst, err)
				}
				a.mu.Unlock()
				a.failed.Store(true)
			}
		}
		a.bufs <- b.buf[:0]
		a.pending.Done()
	}
}

// writeAsync queues a small regular file; false when it is to be written
// inline (large, sparse, or no workers).
func (x *Extractor) writeAsync(dir, name, base string, hdr *tar.Header, body io.Reader) (bool, error) {
	if hdr.Size > asyncBufSize || isSparse(hdr) {
		return false, nil
	}
	a := x.startAsync()
	if a == nil {
		return false, nil
	}
	if a.failed.Load() {
		return true, x.drain()
	}
	dirfd, err := x.parentFd(dir)
	if err != nil {
		return true, err
	}
	if a.cur != nil && (cap(a.cur.buf)-len(a.cur.buf) < int(hdr.Size) || len(a.cur.jobs) == asyncBatchMax) {
		a.flush()
	}
	if a.cur == nil {
		a.cur = &fileBatch{buf: <-a.bufs, jobs: make([]fileJob, 0, asyncBatchMax)}
	}
	b := a.cur
	off := len(b.buf)
	b.buf = b.buf[:off+int(hdr.Size)]
	data := b.buf[off:]
	if _, err := io.ReadFull(readerOnly{body}, data); err != nil {
		b.buf = b.buf[:off]
		return true, corrupt(err)
	}
	b.jobs = append(b.jobs, fileJob{dirfd: dirfd, name: name, base: base, hdr: hdr, data: data})
	return true, nil
}

func (a *asyncWriter) flush() {
	if a.cur == nil {
		return
	}
	a.pending.Add(1)
	a.jobs <- a.cur
	a.cur = nil
}

// drain writes every queued file and returns the first worker error (an
// *asyncError), if any.
func (x *Extractor) drain() error {
	a := x.async
	if a == nil {
		return nil
	}
	a.flush()
	a.pending.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return &asyncError{a.err}
	}
	return nil
}

// stopAsync drains the workers and ends them.
func (x *Extractor) stopAsync() error {
	err := x.drain()
	if a := x.async; a != nil {
		close(a.jobs)
		// Every buffer is back in the pool: nothing refers to them.
		unix.Munmap(a.mem)
		x.async = nil
		x.noAsync = true
	}
	var ae *asyncError
	if errors.As(err, &ae) {
		return ae.err
	}
	return err
}

// parentFd returns a descriptor of directory dir for the workers, cached
// and evicted with the parent handles.
func (x *Extractor) parentFd(dir string) (int, error) {
	if f, ok := x.parentFile[dir]; ok {
		return f.fd, nil
	}
	f, err := x.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return -1, err
	}
	fd := -1
	rc.Control(func(p uintptr) { fd = int(p) })
	if len(x.parentFile) >= maxOpenParents {
		if err := x.drain(); err != nil {
			f.Close()
			return -1, err
		}
		for p, old := range x.parentFile {
			old.f.Close()
			delete(x.parentFile, p)
			break
		}
	}
	x.parentFile[dir] = dirFile{f: f, fd: fd}
	return fd, nil
}

type dirFile struct {
	f  *os.File
	fd int
}

// writeData makes one small file from its body (in a worker).
func (x *Extractor) writeData(j fileJob) error {
	perm := uint32(j.hdr.FileInfo().Mode().Perm())
	if j.hdr.Mode&0o7000 != 0 || x.umask < 0 || perm&uint32(x.umask) != 0 {
		perm = 0o600 // the final mode comes from fchmod
	}
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := openat(j.dirfd, j.base, flags, perm)
	if errors.Is(err, fs.ErrExist) {
		// Left there before the extractor started: replace it.
		if err = x.removeAt(j); err == nil {
			fd, err = openat(j.dirfd, j.base, flags, perm)
		}
	}
	if err != nil {
		return err
	}
	err = writeAll(fd, j.data)
	if err == nil {
		err = x.setMetaFd(fd, j.hdr, perm == uint32(j.hdr.FileInfo().Mode().Perm()) && j.hdr.Mode&0o7000 == 0)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: j.base, Err: cerr}
	}
	return err
}

// removeAt removes what is at a worker's file name, a tree included
// (os.Root is safe for concurrent use).
func (x *Extractor) removeAt(j fileJob) error {
	return x.root.RemoveAll(j.name)
}

func openat(dirfd int, name string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "openat", Path: name, Err: err}
		}
		return fd, nil
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "write", Err: err}
		}
		b = b[n:]
	}
	return nil
}

// creationUmask is what the kernel masks off the modes of files created
// below dst: the process's umask, or -1 when unknown or when dst has a
// default ACL (which then decides instead of the umask).
func creationUmask(dst string) int {
	if _, err := unix.Getxattr(dst, "system.posix_acl_default", nil); err == nil || err == unix.ERANGE {
		return -1
	}
	return processUmask()
}

// processUmask reads the umask from /proc/self/status (Linux 4.7), -1 when
// unknown: reading it with umask(2) would change it for every thread.
func processUmask() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return int(m)
			}
		}
	}
	return -1
}
