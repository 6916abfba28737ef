package fetch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rktng/rkt/aci/httpget"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// urlSource is an http:// or https:// URL, or a mirror appc discovery
// found: a resumable download (download.go), revalidated with the ETag of
// the earlier one, and its signature at <URL>.asc unless given.
type urlSource struct {
	f       *Fetcher
	u       *url.URL
	sigPath string
	exp     expectation
}

func newURLSource(f *Fetcher, r *Ref, sigPath string) (source, error) {
	return f.urlSource(r.URL, sigPath, expectation{what: r.URL.String()})
}

func (f *Fetcher) urlSource(u *url.URL, sigPath string, exp expectation) (*urlSource, error) {
	if u.Scheme == "http" && !f.opts.Insecure.HTTP {
		return nil, fmt.Errorf("fetching %s: plain HTTP: %w (use --insecure-options=http)", u, ErrInsecure)
	}
	return &urlSource{f: f, u: u, sigPath: sigPath, exp: exp}, nil
}

func (s *urlSource) cacheKey() (string, bool) { return s.u.String(), false }

func (s *urlSource) expect() expectation { return s.exp }

func (s *urlSource) open(ctx context.Context, rem *store.Remote) (*stream, error) {
	s.f.warnInsecure()
	etag := ""
	if rem != nil {
		etag = rem.ETag
	}
	d, err := s.f.openDownload(ctx, s.u, label(s.u), etag)
	if err != nil {
		return nil, err
	}
	st := &stream{r: d, etag: d.ETag, maxAge: d.MaxAge, end: func(info *store.ImageInfo, keep bool) {
		if keep {
			d.Close() // keep the partial file: the next fetch resumes it
		} else {
			d.Discard()
		}
	}}
	if d.NotModified {
		s.f.prog.Debug("Image at %s not modified, using %s", s.u, rem.BlobKey)
		st.current = rem.BlobKey
	}
	return st, nil
}

func (s *urlSource) signature(ctx context.Context) ([]byte, bool, error) {
	sig, err := s.f.getSignature(ctx, s.u, s.sigPath, s.exp)
	return sig, false, err
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
