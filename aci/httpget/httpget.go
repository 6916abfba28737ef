// Package httpget is the one GET of a small resource (a signature, a
// discovery page, a public key) that fetching, discovery and trust share:
// the caller's client and context, rkt's User-Agent, credentials over
// HTTPS only, a bound on the body, and errors without the "Get "url": "
// prefix net/http adds, since every caller names the URL itself.
//
// Image downloads are not small: aci/fetch streams and resumes them.
package httpget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// UserAgent is sent with every request rkt makes.
const UserAgent = "rkt (rktng)"

// ErrTooLarge: the body is longer than Options.Limit.
var ErrTooLarge = errors.New("response too large")

// Options of one GET.
type Options struct {
	// Client carries the request; nil is http.DefaultClient.
	Client *http.Client
	// Header gives the credentials for a URL; they are sent over https
	// only, whatever it returns.
	Header func(u *url.URL) http.Header
	// Limit bounds the body read (required).
	Limit int64
	// Truncate returns the first Limit bytes of a longer body instead of
	// failing with ErrTooLarge (an HTML page whose head is what counts).
	Truncate bool
	// Timeout bounds the whole request; 0 leaves it to ctx.
	Timeout time.Duration
}

// Response is what came back.
type Response struct {
	// Status is the HTTP status. Only a 200 has its Body read; any other
	// answer is not an error: the caller decides what it means.
	Status int
	// StatusText is the status line's text ("404 Not Found").
	StatusText string
	Body       []byte
	// URL is where the body came from, after redirects.
	URL *url.URL
}

// Get fetches u. A transport failure is an error (unwrapped from
// *url.Error); an HTTP answer is a Response.
func Get(ctx context.Context, u *url.URL, o Options) (*Response, error) {
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", UserAgent)
	if o.Header != nil && u.Scheme == "https" {
		for k, vs := range o.Header(u) {
			req.Header[k] = vs
		}
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	r := &Response{Status: resp.StatusCode, StatusText: resp.Status, URL: resp.Request.URL}
	if resp.StatusCode != http.StatusOK {
		// Drain a little so that the connection can be reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return r, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, o.Limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > o.Limit {
		if !o.Truncate {
			return nil, fmt.Errorf("more than %d bytes: %w", o.Limit, ErrTooLarge)
		}
		b = b[:o.Limit]
	}
	r.Body = b
	return r, nil
}
