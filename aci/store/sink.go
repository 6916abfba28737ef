package store

import (
	"errors"
	"hash"
	"io"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// sink hashes a stream, and optionally writes it to a file, in a goroutine
// of its own: on an image's first import, hashing and storing the blob then
// overlap with extracting its tree, which is bound by file creation in the
// kernel. Writes are copied into a few large buffers, which also bounds the
// memory in flight and turns the tar reader's 512-byte reads into big
// writes, aligned for a directFile.
type sink struct {
	h      hash.Hash
	w      io.Writer // nil: hash only
	n      int64
	cur    []byte
	full   chan []byte
	free   chan []byte
	done   chan struct{}
	err    error // of the goroutine, read after done is closed
	failed atomic.Bool
	closed bool
	mem    []byte // the buffers' mapping, unmapped by Close
}

const (
	sinkBufSize = 1 << 20
	sinkBufs    = 6
)

var (
	errSinkFailed = errors.New("blob writer failed")
	errSinkClosed = errors.New("blob writer closed")
)

func newSink(h hash.Hash, w io.Writer) *sink {
	s := &sink{
		h:    h,
		w:    w,
		full: make(chan []byte, sinkBufs),
		free: make(chan []byte, sinkBufs),
		done: make(chan struct{}),
	}
	// The buffers live outside the Go heap: in it they would double the
	// heap the collector lets grow (the goal is twice the live heap), 12
	// MiB of stage0's peak RSS on a first run. A mapping is also aligned
	// for O_DIRECT.
	mem, err := unix.Mmap(-1, 0, sinkBufs*sinkBufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err == nil {
		s.mem = mem
	}
	for i := range sinkBufs {
		if s.mem != nil {
			s.free <- s.mem[i*sinkBufSize : i*sinkBufSize : (i+1)*sinkBufSize]
		} else {
			s.free <- directBuf(sinkBufSize)
		}
	}
	go s.run()
	return s
}

func (s *sink) run() {
	defer close(s.done)
	for b := range s.full {
		if s.err == nil {
			s.h.Write(b)
			if s.w != nil {
				if _, err := s.w.Write(b); err != nil {
					s.err = err
					s.failed.Store(true)
				}
			}
		}
		s.free <- b[:0]
	}
}

// Write queues p; it fails once the writer goroutine has failed (the
// error itself comes from Close).
func (s *sink) Write(p []byte) (int, error) {
	if s.closed {
		return 0, errSinkClosed
	}
	if s.failed.Load() {
		return 0, errSinkFailed
	}
	n := len(p)
	for len(p) > 0 {
		if s.cur == nil {
			s.cur = <-s.free
		}
		c := copy(s.cur[len(s.cur):cap(s.cur)], p)
		s.cur = s.cur[:len(s.cur)+c]
		p = p[c:]
		if len(s.cur) == cap(s.cur) {
			s.full <- s.cur
			s.cur = nil
		}
	}
	s.n += int64(n)
	return n, nil
}

// Close flushes what is queued, waits for the goroutine and returns its
// error. The hash is complete once Close has returned nil.
func (s *sink) Close() error {
	if s.closed {
		<-s.done
		return s.err
	}
	s.closed = true
	if len(s.cur) > 0 {
		s.full <- s.cur
		s.cur = nil
	}
	close(s.full)
	<-s.done
	// Every buffer is back in free and nothing refers to them any more.
	for range sinkBufs {
		<-s.free
	}
	if s.mem != nil {
		unix.Munmap(s.mem)
		s.mem = nil
	}
	return s.err
}
