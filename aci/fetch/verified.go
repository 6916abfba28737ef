package fetch

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/appc/spec/schema"
	"github.com/rktng/rkt/aci/archive"
)

// gatedReader is what the store imports from. It reads the source, hands
// each chunk to the checks running beside it (signature hash, manifest
// scan), and passes the chunk on, except for its very last byte: the store
// cannot finish an image without it, and it is released only when finish
// (the signature and manifest checks) succeeds at the end of the source.
// On failure the store gets an error instead, and lists nothing.
type gatedReader struct {
	src     io.Reader
	sinks   []*asyncWriter
	finish  func() error
	buf     []byte
	pending []byte
	tail    byte
	hasTail bool
	eof     bool
	passed  bool  // finish succeeded
	err     error // sticky
	srcErr  bool  // err came from the source (network, partial file)
}

// chunkSize is the read size: large, for few syscalls and handoffs.
const (
	chunkSize = 256 << 10
	minChunk  = 128 << 10
)

// readAtLeast reads until min bytes or an error (io.EOF included, unlike
// io.ReadAtLeast, which hides it when some bytes came).
func readAtLeast(r io.Reader, buf []byte, min int) (int, error) {
	n := 0
	for n < min {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func newGatedReader(src io.Reader, finish func() error, sinks ...*asyncWriter) *gatedReader {
	return &gatedReader{src: src, finish: finish, sinks: sinks, buf: make([]byte, chunkSize+1)}
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(r.pending) > 0 {
			n := copy(p, r.pending)
			r.pending = r.pending[n:]
			return n, nil
		}
		if r.err != nil {
			return 0, r.err
		}
		if r.eof {
			return 0, io.EOF
		}
		// buf[0] is kept for the byte held back from the previous chunk.
		// Fill most of the buffer: a TLS body gives 16 KiB per read, and
		// every chunk costs a handoff to each check.
		n, err := readAtLeast(r.src, r.buf[1:], minChunk)
		if n > 0 {
			chunk := r.buf[1 : 1+n]
			for _, s := range r.sinks {
				if werr := s.Write(chunk); werr != nil {
					r.err = werr
					break
				}
			}
			if r.err != nil {
				continue
			}
			start := 1
			if r.hasTail {
				r.buf[0], start = r.tail, 0
			}
			r.tail, r.hasTail = chunk[n-1], true
			r.pending = r.buf[start:n]
		}
		switch {
		case err == io.EOF:
			if ferr := r.finish(); ferr != nil {
				r.err = ferr
				continue
			}
			r.passed, r.eof = true, true
			if r.hasTail {
				r.hasTail = false
				r.pending = append(r.pending[:len(r.pending):len(r.pending)], r.tail)
			}
		case err != nil:
			r.err, r.srcErr = err, true
		}
	}
}

// asyncWriter hands writes to a goroutine, so that hashing and scanning run
// on another core while the next chunk is read. Write copies the chunk; an
// error of the underlying writer comes back from a later Write or from
// Close. A writer that returns errSinkDone is simply dropped.
type asyncWriter struct {
	ch   chan []byte
	pool sync.Pool
	done chan struct{}
	mu   sync.Mutex
	err  error
}

var errSinkDone = errors.New("sink needs no more data")

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{ch: make(chan []byte, 8), done: make(chan struct{})}
	a.pool.New = func() any { return make([]byte, 0, chunkSize) }
	go func() {
		defer close(a.done)
		failed := false
		for b := range a.ch {
			if !failed {
				if _, err := w.Write(b); err != nil {
					failed = true
					if !errors.Is(err, errSinkDone) {
						a.setErr(err)
					}
				}
			}
			//lint:ignore SA6002 slices are pooled by value on purpose
			a.pool.Put(b[:0])
		}
	}()
	return a
}

func (a *asyncWriter) setErr(err error) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
}

func (a *asyncWriter) getErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *asyncWriter) Write(p []byte) error {
	if err := a.getErr(); err != nil {
		return err
	}
	b := append(a.pool.Get().([]byte), p...)
	a.ch <- b
	return nil
}

// Close waits for the queued writes and returns the writer's error.
func (a *asyncWriter) Close() error {
	close(a.ch)
	<-a.done
	return a.getErr()
}

// manifestScan finds the image manifest in an ACI stream written to it,
// using aci/archive's validating reader, and stops consuming once found.
type manifestScan struct {
	pw       *io.PipeWriter
	done     chan struct{}
	manifest *schema.ImageManifest
	err      error
}

var errFoundManifest = errors.New("manifest found")

func newManifestScan() *manifestScan {
	pr, pw := io.Pipe()
	s := &manifestScan{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		rc, err := archive.NewReader(pr)
		if err == nil {
			_, err = archive.Scan(rc, func(e *archive.Entry) error {
				if e.Manifest != nil {
					s.manifest = e.Manifest
					return errFoundManifest
				}
				return nil
			})
			rc.Close()
		}
		if errors.Is(err, errFoundManifest) {
			err = nil
		}
		if err == nil && s.manifest == nil {
			err = errors.New("image has no manifest")
		}
		s.err = err
		pr.CloseWithError(errSinkDone)
	}()
	return s
}

func (s *manifestScan) Write(p []byte) (int, error) { return s.pw.Write(p) }

// Result ends the stream and returns the manifest.
func (s *manifestScan) Result() (*schema.ImageManifest, error) {
	s.pw.Close()
	<-s.done
	if s.err != nil {
		return nil, fmt.Errorf("reading image manifest: %w", s.err)
	}
	return s.manifest, nil
}

// abort releases the goroutine after a failure.
func (s *manifestScan) abort() {
	s.pw.CloseWithError(errors.New("aborted"))
	<-s.done
}
