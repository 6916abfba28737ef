package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/aci/httpget"
)

// A download is one resumable HTTP GET. Bytes received are appended to a
// partial file under DownloadDir, named by a hash of the URL, with a small
// JSON sidecar recording the validator (ETag or Last-Modified) that makes
// resuming safe: the next attempt asks for the rest with Range and
// If-Range, and starts over if the server says the content changed.
//
// A download is read as one stream: first the partial file's bytes, then
// the network's. A dropped connection, a truncated body or a stall is
// retried from where it stopped, up to Options.Retries times.
type download struct {
	f      *Fetcher
	ctx    context.Context
	u      *url.URL
	label  string
	header http.Header // extra request headers (If-None-Match)

	lock     *os.File
	part     *os.File // append handle
	partPath string
	metaPath string
	meta     partMeta

	replay      io.Reader // the partial file's bytes, read before the network
	started     bool      // the first response came: later requests resume a stream
	resp        *http.Response
	cancel      context.CancelFunc
	stall       *time.Timer
	stalled     bool
	mu          sync.Mutex
	received    int64 // bytes of the content delivered so far (replay + network)
	retries     int
	bar         *bar
	saver       *asyncWriter // appends to part off the read path; nil once it failed
	netErr      error        // a read error that came with data, handled on the next Read
	ETag        string       // of the response, for the Remote record
	MaxAge      int          // Cache-Control max-age of the response
	NotModified bool
}

// partMeta is the sidecar of a partial file.
type partMeta struct {
	URL       string `json:"url"`
	Validator string `json:"validator"` // strong ETag or Last-Modified
	Total     int64  `json:"total"`     // -1 unknown
}

// openDownload locks the URL's partial file and sends the first request.
// ifNoneMatch, when set, revalidates an image already in the store: a 304
// sets NotModified and nothing is read.
func (f *Fetcher) openDownload(ctx context.Context, u *url.URL, label, ifNoneMatch string) (*download, error) {
	if err := os.MkdirAll(f.opts.DownloadDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating download directory %s: %w", f.opts.DownloadDir, err)
	}
	sum := sha256.Sum256([]byte(u.String()))
	base := filepath.Join(f.opts.DownloadDir, hex.EncodeToString(sum[:16]))
	d := &download{f: f, ctx: ctx, u: u, label: label, partPath: base + ".part", metaPath: base + ".json", header: http.Header{}}
	if ifNoneMatch != "" {
		d.header.Set("If-None-Match", ifNoneMatch)
	}
	if err := d.lockFile(base + ".lock"); err != nil {
		return nil, err
	}
	// O_APPEND: network bytes always go after what is there, whatever
	// the file offset (the replay reads with ReadAt).
	part, err := os.OpenFile(d.partPath, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		d.unlock()
		return nil, fmt.Errorf("opening partial download %s: %w", d.partPath, err)
	}
	d.part = part
	if err := d.loadMeta(); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.request(); err != nil {
		if err = d.retry(err); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// lockFile serializes two rkt processes fetching the same URL: the second
// waits, then finds the first one's result (or its partial file).
func (d *download) lockFile(path string) error {
	lf, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("locking download of %s: %w", d.u, err)
	}
	err = unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		d.f.prog.Info("Another rkt process is downloading %s, waiting...", d.u)
		err = unix.Flock(int(lf.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		lf.Close()
		return fmt.Errorf("locking download of %s: %w", d.u, err)
	}
	d.lock = lf
	return nil
}

func (d *download) unlock() {
	if d.lock != nil {
		d.lock.Close() // releases the flock
		d.lock = nil
	}
}

// loadMeta keeps the partial file only if its sidecar says it is this URL's
// and can be resumed safely.
func (d *download) loadMeta() error {
	fi, err := d.part.Stat()
	if err != nil {
		return fmt.Errorf("reading partial download %s: %w", d.partPath, err)
	}
	raw, err := os.ReadFile(d.metaPath)
	if err == nil && json.Unmarshal(raw, &d.meta) == nil && d.meta.URL == d.u.String() && d.meta.Validator != "" &&
		fi.Size() > 0 && (d.meta.Total < 0 || fi.Size() < d.meta.Total) {
		d.received = 0
		return nil
	}
	d.meta = partMeta{URL: d.u.String(), Total: -1}
	return d.truncate()
}

func (d *download) truncate() error {
	if err := d.part.Truncate(0); err != nil {
		return fmt.Errorf("resetting partial download %s: %w", d.partPath, err)
	}
	if _, err := d.part.Seek(0, io.SeekStart); err != nil {
		return err
	}
	os.Remove(d.metaPath)
	return nil
}

func (d *download) partSize() int64 {
	fi, err := d.part.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// request sends a GET for what is missing: after the partial file on the
// first request, after what was delivered on a retry.
func (d *download) request() error {
	have := d.partSize()
	if d.started {
		have = d.received
	}
	if d.resp != nil {
		d.resp.Body.Close()
		d.resp = nil
	}
	ctx, cancel := context.WithCancel(d.ctx)
	resp, err := d.send(ctx, have)
	if err != nil {
		cancel()
		return err
	}
	have, next, err := d.answer(resp, have)
	if err != nil || next != readBody {
		resp.Body.Close()
		cancel()
		if err == nil && next == askAgain {
			return d.request()
		}
		return err
	}
	d.accept(resp, cancel, have)
	return nil
}

// send sends the GET: a Range request after have bytes, guarded by the
// validator, or a whole one with the revalidation headers.
func (d *download) send(ctx context.Context, have int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", d.u, err)
	}
	req.Header.Set("User-Agent", httpget.UserAgent)
	for k, vs := range d.f.Header(d.u) {
		req.Header[k] = vs
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		req.Header.Set("If-Range", d.meta.Validator)
	} else {
		for k, vs := range d.header {
			req.Header[k] = vs
		}
	}
	resp, err := d.f.client.Do(req)
	if err != nil {
		return nil, d.netError("GET", err)
	}
	return resp, nil
}

// What to do with an answer.
type nextStep int

const (
	readBody nextStep = iota // the body is the content from have on
	askAgain                 // the partial file was dropped: ask for all of it
	noBody                   // 304: the stored image is current
)

// answer decides what the response means for the partial file, returning
// the bytes the body continues from.
func (d *download) answer(resp *http.Response, have int64) (int64, nextStep, error) {
	switch {
	case resp.StatusCode == http.StatusNotModified && have == 0 && d.header.Get("If-None-Match") != "":
		d.NotModified = true
		d.ETag = resp.Header.Get("ETag")
		d.MaxAge = maxAge(resp.Header.Get("Cache-Control"))
		return have, noBody, nil
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			if d.started {
				return have, readBody, fmt.Errorf("GET %s: asked for bytes from %d, the server sent %q: %w", d.u, have, resp.Header.Get("Content-Range"), errNotResumable)
			}
			// A server answering another range cannot be trusted to
			// resume: start over.
			return have, askAgain, d.truncate()
		}
		d.meta.Total = total
		return have, readBody, nil
	case resp.StatusCode == http.StatusOK:
		return d.whole(resp, have)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0 && !d.started:
		return have, askAgain, d.truncate()
	}
	return have, readBody, statusError(d.u, resp)
}

// whole handles a 200: the content from its start, which replaces a
// partial file (If-Range failed: it changed, or the server ignores
// ranges) and records the validator a later resume needs.
func (d *download) whole(resp *http.Response, have int64) (int64, nextStep, error) {
	if have > 0 {
		if d.started {
			return have, readBody, fmt.Errorf("GET %s: the server sent the whole content again after %s had been read (it changed, or does not support resuming): %w",
				d.u, byteSize(d.received), errNotResumable)
		}
		if err := d.truncate(); err != nil {
			return have, readBody, err
		}
		have = 0
	}
	d.meta = partMeta{URL: d.u.String(), Validator: validator(resp.Header), Total: resp.ContentLength}
	if d.meta.Validator != "" {
		raw, _ := json.Marshal(d.meta)
		if err := os.WriteFile(d.metaPath, raw, 0o600); err != nil {
			return have, readBody, fmt.Errorf("writing partial download state %s: %w", d.metaPath, err)
		}
	}
	return have, readBody, nil
}

// accept makes resp the stream being read, after have bytes.
func (d *download) accept(resp *http.Response, cancel context.CancelFunc, have int64) {
	d.ETag = resp.Header.Get("ETag")
	d.MaxAge = maxAge(resp.Header.Get("Cache-Control"))
	d.mu.Lock()
	d.resp, d.cancel = resp, cancel
	d.mu.Unlock()
	if !d.started && have > 0 {
		d.replay = io.NewSectionReader(d.part, 0, have)
	}
	if !d.started && d.meta.Validator != "" {
		// Without a validator a partial file could not be resumed safely:
		// do not write it.
		d.saver = newAsyncWriter(d.part)
	}
	d.started = true
	if d.bar == nil {
		d.bar = d.f.prog.Start(d.label, d.meta.Total, have)
	}
}

// statusError describes an HTTP failure with what the server said.
func statusError(u *url.URL, resp *http.Response) error {
	msg := fmt.Sprintf("GET %s: %s", u, resp.Status)
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += fmt.Sprintf(" (credentials for %s go in auth.d)", u.Host)
	}
	return &statusErr{code: resp.StatusCode, msg: msg}
}

// netError names the URL and says what kind of failure it was.
func (d *download) netError(op string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, ErrInsecure) || errors.Is(err, errRedirectLoop) {
		return fmt.Errorf("%s %s: %w", op, d.u, err)
	}
	if d.ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", op, d.u, d.ctx.Err())
	}
	return fmt.Errorf("%s %s: %w", op, d.u, err)
}

// validator is what If-Range can use: a strong ETag, else Last-Modified.
func validator(h http.Header) string {
	if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		return et
	}
	return h.Get("Last-Modified")
}

func parseContentRange(s string) (start, total int64, ok bool) {
	// "bytes 100-199/200" or "bytes 100-199/*"
	s, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

// maxAge reads Cache-Control's max-age; no-cache and no-store mean 0.
func maxAge(cc string) int {
	age := 0
	for _, part := range strings.Split(cc, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(k) {
		case "no-cache", "no-store":
			return 0
		case "max-age":
			if n, err := strconv.Atoi(strings.Trim(v, `"`)); err == nil && n > 0 {
				age = n
			}
		}
	}
	return age
}

// Read delivers the partial file's bytes, then the network's, appending
// the latter to the partial file and resuming after failures.
func (d *download) Read(p []byte) (int, error) {
	if d.replay != nil {
		n, err := d.replay.Read(p)
		if n > 0 {
			d.received += int64(n)
			return n, nil
		}
		if err != io.EOF {
			return 0, fmt.Errorf("reading partial download %s: %w", d.partPath, err)
		}
		d.replay = nil
	}
	for {
		var n int
		err := d.netErr
		d.netErr = nil
		if err == nil {
			n, err = d.readNet(p)
		}
		if n > 0 {
			d.save(p[:n])
			d.received += int64(n)
			d.bar.Add(n)
			// Deliver the bytes; deal with the error on the next call.
			d.netErr = err
			return n, nil
		}
		if err == io.EOF && (d.meta.Total < 0 || d.received == d.meta.Total) {
			d.bar.Finish(nil)
			return 0, io.EOF
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("connection closed after %s of %s: %w", byteSize(d.received), byteSize(d.meta.Total), io.ErrUnexpectedEOF)
		}
		if rerr := d.retry(err); rerr != nil {
			d.bar.Finish(rerr)
			return 0, rerr
		}
	}
}

// save appends to the partial file. Failing to save costs only the
// ability to resume, so it is reported once, not fatal.
func (d *download) save(b []byte) {
	if d.saver == nil {
		return
	}
	if err := d.saver.Write(b); err != nil {
		d.f.prog.Warn("warning: cannot keep the partial download of %s (%v); an interrupted fetch will start over", d.label, err)
		d.saver.Close()
		d.saver = nil
		os.Remove(d.metaPath)
	}
}

// readNet reads the body under the stall watchdog, which runs only while
// a read waits: a slow consumer is not a stalled server.
func (d *download) readNet(p []byte) (int, error) {
	if d.stall == nil {
		d.stall = time.AfterFunc(d.f.opts.StallTimeout, func() {
			d.mu.Lock()
			d.stalled = true
			cancel := d.cancel
			d.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		})
	} else {
		d.stall.Reset(d.f.opts.StallTimeout)
	}
	n, err := d.resp.Body.Read(p)
	d.stall.Stop()
	return n, err
}

// retry resumes after err, or gives up with an error naming the URL.
// Network failures and 5xx answers are retried; 4xx answers are final.
func (d *download) retry(err error) error {
	for {
		d.mu.Lock()
		stalled := d.stalled
		d.stalled = false
		d.mu.Unlock()
		if stalled {
			err = fmt.Errorf("no data received for %s", d.f.opts.StallTimeout)
		}
		if d.ctx.Err() != nil {
			return fmt.Errorf("GET %s: %w", d.u, d.ctx.Err())
		}
		if !retryable(err) {
			return err
		}
		if d.retries >= d.f.opts.Retries || d.f.opts.Retries < 0 {
			return fmt.Errorf("GET %s: giving up after %d retries: %w", d.u, d.retries, wrapDownload(err))
		}
		if d.started && d.meta.Validator == "" {
			return fmt.Errorf("GET %s: %w (the server gives no ETag or Last-Modified, so the download cannot be resumed)", d.u, wrapDownload(err))
		}
		d.retries++
		d.f.prog.Info("Download of %s interrupted at %s (%v); retrying (%d/%d)", d.label, byteSize(d.received), err, d.retries, d.f.opts.Retries)
		select {
		case <-time.After(time.Duration(d.retries) * 200 * time.Millisecond):
		case <-d.ctx.Done():
			return fmt.Errorf("GET %s: %w", d.u, d.ctx.Err())
		}
		if d.cancel != nil {
			d.cancel()
		}
		if err = d.request(); err == nil {
			return nil
		}
	}
}

func wrapDownload(err error) error {
	if errors.Is(err, ErrDownload) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrDownload, err)
}

// statusErr is an HTTP answer other than the expected ones.
type statusErr struct {
	code int
	msg  string
}

func (e *statusErr) Error() string { return e.msg }
func (e *statusErr) Unwrap() error { return ErrDownload }

func retryable(err error) bool {
	var se *statusErr
	if errors.As(err, &se) {
		return se.code >= 500
	}
	return !errors.Is(err, ErrInsecure) && !errors.Is(err, errRedirectLoop) && !errors.Is(err, errNotResumable)
}

// errNotResumable: the server cannot continue a stream already delivered.
var errNotResumable = fmt.Errorf("%w: cannot resume", ErrDownload)

// Close releases the download, keeping the partial file for the next
// attempt.
func (d *download) Close() {
	if d.stall != nil {
		d.stall.Stop()
	}
	if d.resp != nil {
		d.resp.Body.Close()
		d.resp = nil
	}
	if d.cancel != nil {
		d.cancel()
	}
	if d.saver != nil {
		d.saver.Close()
		d.saver = nil
	}
	if d.part != nil {
		d.part.Close()
		d.part = nil
	}
	d.unlock()
}

// Discard closes the download and removes the partial file: it was
// imported, or its content was refused and must not be resumed.
func (d *download) Discard() {
	d.Close()
	os.Remove(d.partPath)
	os.Remove(d.metaPath)
}
