package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ClientOptions shape the HTTP client of fetches, discovery and trust.
type ClientOptions struct {
	InsecureTLS bool           // skip certificate verification
	AllowHTTP   bool           // allow redirects from https to http
	RootCAs     *x509.CertPool // nil: the system roots (SSL_CERT_FILE honoured)
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Timeouts of one connection. A download has no overall timeout (images
// are big); a stalled one is cut by Options.StallTimeout instead.
const (
	dialTimeout           = 30 * time.Second
	tlsHandshakeTimeout   = 15 * time.Second
	responseHeaderTimeout = 60 * time.Second
	maxRedirects          = 10
)

// NewHTTPClient returns a client with sane timeouts, proxy support from the
// environment, at most 10 redirects, and no silent downgrade from https to
// http. Go drops credentials on a redirect to another host.
func NewHTTPClient(o ClientOptions) (*http.Client, error) {
	dial := o.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: responseHeaderTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		// Big buffers: images are large and loopback or LAN fast.
		ReadBufferSize:  256 << 10,
		WriteBufferSize: 64 << 10,
		TLSClientConfig: &tls.Config{
			RootCAs:            o.RootCAs,
			InsecureSkipVerify: o.InsecureTLS,
			MinVersion:         tls.VersionTLS12,
		},
	}
	allowHTTP := o.AllowHTTP
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects (last to %s): %w", maxRedirects, req.URL, errRedirectLoop)
			}
			if req.URL.Scheme == "http" && via[len(via)-1].URL.Scheme == "https" && !allowHTTP {
				return fmt.Errorf("redirect from %s to plain-HTTP %s: %w (use --insecure-options=http)", via[len(via)-1].URL, req.URL, ErrInsecure)
			}
			return nil
		},
	}, nil
}

var errRedirectLoop = errors.New("too many redirects")
