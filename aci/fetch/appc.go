package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/httpget"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// expectation is what the fetched image must be.
type expectation struct {
	what   string              // for messages: the argument, or the URL
	name   *types.ACIdentifier // nil: any name
	labels map[types.ACIdentifier]string
	latest bool
}

// check applies appc's rule: the name is the one asked for, and every label
// asked for is in the manifest with the same value.
func (e expectation) check(m *schema.ImageManifest) error {
	if e.name != nil && m.Name != *e.name {
		return fmt.Errorf("%s: the image's manifest names %q, not %q: %w", e.what, m.Name, *e.name, ErrMismatch)
	}
	for k, want := range e.labels {
		got, ok := m.GetLabel(k.String())
		if !ok {
			return fmt.Errorf("%s: image %s has no label %s (asked for %s=%s): %w", e.what, m.Name, k, k, want, ErrMismatch)
		}
		if got != want {
			return fmt.Errorf("%s: image %s has label %s=%s, not %s=%s: %w", e.what, m.Name, k, got, k, want, ErrMismatch)
		}
	}
	return nil
}

// importVerified imports one ACI stream into the store after checking it
// against sig (nil when verification is waived) and exp, in one pass (see
// gatedReader). failedSource tells the caller whether the source failed
// (a partial download worth resuming) rather than the content.
func (f *Fetcher) importVerified(src io.Reader, sig []byte, exp expectation) (info store.ImageInfo, signer *trust.Signer, failedSource bool, err error) {
	check, err := f.newCheck(sig, exp)
	if err != nil {
		return info, nil, false, err
	}
	c := newChecks(check, exp)
	gr := newGatedReader(src, c.finish, c.sinks...)
	start := time.Now()
	info, err = f.opts.Store.Import(gr, store.ImportOptions{Latest: exp.latest, NoRender: f.opts.NoRender})
	if err != nil && !c.finished && gr.err == nil && check != nil {
		// The store refused the content before its end. If that is
		// because it was tampered with, the signature says so more
		// clearly: read the rest through the checks.
		if _, derr := io.Copy(io.Discard, gr); derr != nil {
			var ve *trust.VerifyError
			if errors.As(derr, &ve) {
				return store.ImageInfo{}, nil, false, derr
			}
		}
	}
	if !c.finished {
		c.release() // the import stopped before the end
	}
	if gr.err != nil {
		// Our own reason is more precise than the store's report of it.
		return store.ImageInfo{}, nil, gr.srcErr, named(gr.err, exp)
	}
	if err != nil {
		return store.ImageInfo{}, nil, false, fmt.Errorf("importing %s: %w", exp.what, err)
	}
	if !gr.passed {
		if err := f.checkRest(gr, info, start); err != nil {
			return store.ImageInfo{}, nil, false, err
		}
	}
	f.imported(info)
	if c.signer != nil {
		f.prog.Info("Signed by %s (key trusted for %s)", c.signer, prefixName(c.signer.Prefix))
	}
	if f.onVerified != nil {
		f.onVerified(&Verified{Name: c.manifest.Name.String(), Manifest: c.manifest, Signer: c.signer})
	}
	return info, c.signer, false, nil
}

// newCheck starts the signature check of sig, nil when verification is
// waived. A key that cannot be trusted for the expected name fails here,
// before anything is read.
func (f *Fetcher) newCheck(sig []byte, exp expectation) (*trust.Check, error) {
	if f.opts.Insecure.Image {
		return nil, nil
	}
	if f.opts.Keystore == nil {
		return nil, fmt.Errorf("%s: no trust keystore to verify the image with: %w", exp.what, trust.ErrUntrusted)
	}
	check, err := f.opts.Keystore.NewCheck(sig)
	if err != nil {
		return nil, named(err, exp)
	}
	if exp.name != nil {
		if err := check.Precheck(*exp.name); err != nil {
			check.Abort()
			return nil, err
		}
	}
	return check, nil
}

// checkRest handles a store that finished without the last byte, which it
// must not: it runs the checks on the rest now and takes the image back if
// they fail.
func (f *Fetcher) checkRest(gr *gatedReader, info store.ImageInfo, start time.Time) error {
	_, err := io.Copy(io.Discard, gr)
	if err == nil && gr.passed {
		return nil
	}
	if rm, ok := f.opts.Store.(remover); ok && !info.ImportTime.Before(start) {
		rm.Remove(info.ID)
	}
	if err == nil {
		err = errors.New("the store did not read the whole image")
	}
	return err
}

// checks are what runs beside an import: the manifest scan and, unless
// verification is waived, the signature check, each on its own goroutine.
type checks struct {
	exp      expectation
	scan     *manifestScan
	scanW    *asyncWriter
	check    *trust.Check // nil: verification waived
	checkW   *asyncWriter
	sinks    []*asyncWriter
	finished bool
	manifest *schema.ImageManifest
	signer   *trust.Signer
}

func newChecks(check *trust.Check, exp expectation) *checks {
	c := &checks{exp: exp, scan: newManifestScan(), check: check}
	c.scanW = newAsyncWriter(c.scan)
	c.sinks = []*asyncWriter{c.scanW}
	if check != nil {
		c.checkW = newAsyncWriter(check)
		c.sinks = append(c.sinks, c.checkW)
	}
	return c
}

// finish runs at the end of the stream: the signature, the manifest and
// the expectation must all pass for the store to get the last byte.
func (c *checks) finish() error {
	c.finished = true
	scanErr := c.scanW.Close()
	var checkErr error
	if c.checkW != nil {
		checkErr = c.checkW.Close()
	}
	m, err := c.scan.Result()
	c.manifest = m
	if checkErr != nil {
		// The signature already failed (unknown key): say so first.
		c.check.Abort()
		return checkErr
	}
	// A tampered image is reported as tampered, even when it is too
	// damaged to have a readable manifest.
	if c.check != nil {
		if cerr := c.check.Complete(); cerr != nil {
			return named(cerr, c.exp)
		}
	}
	if err == nil {
		err = scanErr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.exp.what, err)
	}
	if err := c.exp.check(m); err != nil {
		return err
	}
	if c.check != nil {
		s, err := c.check.Finish(m.Name)
		if err != nil {
			return err
		}
		c.signer = s
	}
	return nil
}

// release stops the checks of an import that ended before the stream did.
func (c *checks) release() {
	c.scanW.Close()
	c.scan.abort()
	if c.checkW != nil {
		c.checkW.Close()
		c.check.Abort()
	}
}

func prefixName(p string) string {
	if p == "" {
		return "all images"
	}
	return "prefix " + p
}

func named(err error, exp expectation) error {
	var ve *trust.VerifyError
	if errors.As(err, &ve) && ve.Name == "" {
		ve.Name = exp.what
	}
	return err
}

// fetchFile imports a local ACI, verified with sigPath or <path>.asc, and
// its dependencies.
func (f *Fetcher) fetchFile(ctx context.Context, r *Ref, sigPath string) (string, error) {
	id, err := f.importFile(ctx, r, sigPath)
	if err != nil {
		return "", err
	}
	return id, f.fetchDeps(ctx, id)
}

func (f *Fetcher) importFile(ctx context.Context, r *Ref, sigPath string) (string, error) {
	f.warnInsecure()
	img, err := os.Open(r.Path)
	if err != nil {
		return "", fmt.Errorf("opening image %s: %w", r.Path, err)
	}
	defer img.Close()
	var sig []byte
	if !f.opts.Insecure.Image {
		if sigPath == "" {
			sigPath = r.Path + ".asc"
		}
		if sig, err = os.ReadFile(sigPath); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", &trust.VerifyError{Name: r.Path, Err: trust.ErrUnsigned,
					Detail: fmt.Sprintf("no signature at %s (give one with --signature, or skip verification with --insecure-options=image)", sigPath)}
			}
			return "", fmt.Errorf("reading signature %s: %w", sigPath, err)
		}
	}
	info, _, _, err := f.importVerified(img, sig, expectation{what: r.Path})
	if err != nil {
		return "", err
	}
	f.prog.Debug("Imported %s as %s", r.Path, info.ID)
	return info.ID, nil
}

// fetchURL fetches an http(s) URL, honouring the pull policy and the
// Remote record (ETag, Cache-Control) of an earlier download.
func (f *Fetcher) fetchURL(ctx context.Context, r *Ref, sigPath string) (string, error) {
	id, err := f.fetchURLImage(ctx, r.URL, sigPath, expectation{what: r.URL.String()})
	if err != nil {
		return "", err
	}
	return id, f.fetchDeps(ctx, id)
}

func (f *Fetcher) fetchURLImage(ctx context.Context, u *url.URL, sigPath string, exp expectation) (string, error) {
	if u.Scheme == "http" && !f.opts.Insecure.HTTP {
		return "", fmt.Errorf("fetching %s: plain HTTP: %w (use --insecure-options=http)", u, ErrInsecure)
	}
	rem, cached := f.cachedRemote(u.String())
	if cached != "" {
		switch {
		case f.opts.PullPolicy != PullUpdate:
			f.prog.Debug("Using image %s from the store for %s", cached, u)
			return cached, nil
		case rem.CacheMaxAge > 0 && time.Since(rem.DownloadTime) < time.Duration(rem.CacheMaxAge)*time.Second:
			f.prog.Debug("Image for %s is fresh for %ds more, not fetching", u, rem.CacheMaxAge-int(time.Since(rem.DownloadTime).Seconds()))
			return cached, nil
		}
	}
	if f.opts.PullPolicy == PullNever {
		return "", fmt.Errorf("image %s: %w (--pull-policy=never)", u, ErrNotInStore)
	}
	f.warnInsecure()
	etag := ""
	if cached != "" {
		etag = rem.ETag
	}
	d, err := f.openDownload(ctx, u, label(u), etag)
	if err != nil {
		return "", err
	}
	if d.NotModified {
		d.Close()
		f.prog.Debug("Image at %s not modified, using %s", u, cached)
		f.setRemote(u.String(), cached, d.ETag, d.MaxAge)
		return cached, nil
	}
	var sig []byte
	if !f.opts.Insecure.Image {
		if sig, err = f.getSignature(ctx, u, sigPath, exp); err != nil {
			d.Close()
			return "", err
		}
	}
	info, _, failedSource, err := f.importVerified(d, sig, exp)
	if err != nil {
		if failedSource {
			d.Close() // keep the partial file: the next fetch resumes it
		} else {
			d.Discard()
		}
		return "", err
	}
	d.Discard()
	f.setRemote(u.String(), info.ID, d.ETag, d.MaxAge)
	return info.ID, nil
}

// cachedRemote returns the Remote record of url and its image, when the
// image is still in the store.
func (f *Fetcher) cachedRemote(u string) (*store.Remote, string) {
	rem, err := f.opts.Store.GetRemote(u)
	if err != nil || rem == nil || rem.BlobKey == "" {
		return nil, ""
	}
	if _, err := f.opts.Store.Info(rem.BlobKey); err != nil {
		return nil, ""
	}
	return rem, rem.BlobKey
}

func (f *Fetcher) setRemote(u, id, etag string, maxAge int) {
	err := f.opts.Store.SetRemote(&store.Remote{URL: u, ETag: etag, BlobKey: id, CacheMaxAge: maxAge, DownloadTime: time.Now()})
	if err != nil {
		// The image is in; only the next fetch's cache decision suffers.
		f.prog.Warn("warning: recording where %s came from: %v", id, err)
	}
}

func label(u *url.URL) string {
	if i := strings.LastIndex(u.Path, "/"); i >= 0 && i < len(u.Path)-1 {
		return u.Path[i+1:]
	}
	return u.String()
}

// maxSigSize bounds a downloaded signature.
const maxSigSize = 1 << 20

// getSignature reads sigPath, or downloads the image URL's .asc (or the
// discovered one), mapping "there is none" to trust.ErrUnsigned.
func (f *Fetcher) getSignature(ctx context.Context, img *url.URL, sigPath string, exp expectation) ([]byte, error) {
	if sigPath != "" && !strings.Contains(sigPath, "://") {
		sig, err := os.ReadFile(sigPath)
		if err != nil {
			return nil, fmt.Errorf("reading signature %s: %w", sigPath, err)
		}
		return sig, nil
	}
	loc := sigPath
	if loc == "" {
		su := *img
		su.Path += ".asc"
		su.RawPath = ""
		loc = su.String()
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("signature URL %q: %w", loc, err)
	}
	if u.Scheme == "http" && !f.opts.Insecure.HTTP {
		return nil, fmt.Errorf("fetching signature %s: plain HTTP: %w (use --insecure-options=http)", u, ErrInsecure)
	}
	var lastErr error
	for attempt := 0; attempt <= max(f.opts.Retries, 0); attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		sig, status, err := f.get(ctx, u, maxSigSize)
		switch {
		case err == nil && status == http.StatusOK:
			f.prog.Debug("Downloaded signature %s", u)
			return sig, nil
		case err == nil && (status == http.StatusNotFound || status == http.StatusGone):
			return nil, &trust.VerifyError{Name: exp.what, Err: trust.ErrUnsigned,
				Detail: fmt.Sprintf("no signature at %s (%d %s; skip verification with --insecure-options=image)", u, status, http.StatusText(status))}
		case err == nil && status < 500:
			return nil, fmt.Errorf("fetching signature %s: %d %s: %w", u, status, http.StatusText(status), ErrDownload)
		case err == nil:
			lastErr = fmt.Errorf("fetching signature %s: %d %s: %w", u, status, http.StatusText(status), ErrDownload)
		case !retryable(err):
			return nil, fmt.Errorf("fetching signature %s: %w", u, err)
		default:
			lastErr = fmt.Errorf("fetching signature %s: %w: %w", u, ErrDownload, err)
		}
	}
	return nil, lastErr
}

// get reads a small resource whole, with the fetch's client and
// credentials.
func (f *Fetcher) get(ctx context.Context, u *url.URL, limit int64) ([]byte, int, error) {
	r, err := httpget.Get(ctx, u, httpget.Options{Client: f.client, Header: f.Header, Limit: limit, Timeout: 2 * time.Minute})
	if err != nil {
		return nil, 0, err
	}
	return r.Body, r.Status, nil
}
