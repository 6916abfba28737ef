// Package fetch gets images into the store: from a file, a file://,
// https:// or http:// URL, an appc name found by meta discovery (with the
// image's dependencies, recursively), a docker registry, or an OCI image
// layout (oci-archive:, oci:). Each scheme is a source (source.go) with a
// file of its own. Every image except a docker one pinned by digest is
// verified against the trust keystore unless verification is waived
// (--insecure-options=image), and is checked to be what was asked for
// (name and labels) before the store may list it. A fetch that fails takes
// back the images it stored.
//
// One download streams once: bytes arriving from the network are written
// to a partial file (so a killed fetch resumes with a Range request), hashed
// for the signature, scanned for the manifest and imported, all at once.
// The store sees the last byte only after the signature and the manifest
// have been checked, so a refused image is never listed (see verified.go
// and import.go).
//
// The types: Options configures a Fetcher; Fetcher.FetchImage is the entry
// point of `rkt fetch/run/prepare` for one argument; Store is what this
// package needs of aci/store; NewHTTPClient builds the HTTP client that
// fetching, discovery and `rkt trust` share.
package fetch

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/docker"
	"github.com/rktng/rkt/aci/imagearg"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
	"github.com/rktng/rkt/common/config"
)

// Store is what fetching needs of the image store; *store.Store has it.
type Store interface {
	Import(r io.Reader, opts store.ImportOptions) (store.ImageInfo, error)
	ResolveKey(idOrPrefix string) (string, error)
	GetACI(name types.ACIdentifier, labels types.Labels) (string, error)
	Info(key string) (store.ImageInfo, error)
	GetImageManifest(key string) (*schema.ImageManifest, error)
	GetRemote(url string) (*store.Remote, error)
	SetRemote(r *store.Remote) error
	RemoveRemote(url string) error
}

// remover is the store's Remove, used to take back an image the store
// committed without reading it whole (which aci/store does not do), and
// the images of a fetch that failed after they were stored.
type remover interface {
	Remove(key string, keepTrees ...string) error
}

// PullPolicy says when to use the network (aci/imagearg's).
type PullPolicy = imagearg.PullPolicy

// The pull policies, as rkt's --pull-policy.
const (
	PullNew    = imagearg.PullNew
	PullUpdate = imagearg.PullUpdate
	PullNever  = imagearg.PullNever
)

// ParsePullPolicy parses the flag value.
func ParsePullPolicy(s string) (PullPolicy, error) { return imagearg.ParsePullPolicy(s) }

// InsecureOptions are the fetch part of --insecure-options.
type InsecureOptions struct {
	Image  bool // do not verify signatures
	TLS    bool // do not verify TLS certificates
	HTTP   bool // allow plain http:// (URLs and discovery)
	PubKey bool // allow keys discovered during a fetch to come over insecure transport
}

// Options configure a Fetcher.
type Options struct {
	Store    Store
	Keystore *trust.Keystore // nil: nothing is trusted (only Insecure.Image fetches succeed)
	Config   *config.Config  // auth per host, docker credentials; nil: none
	Insecure InsecureOptions
	// PullPolicy defaults to PullNew.
	PullPolicy PullPolicy
	// TrustKeysFromHTTPS trusts, without review, the keys an image's
	// prefix announces (ac-discovery-pubkeys) over verified HTTPS when no
	// key is trusted for it yet (--trust-keys-from-https).
	TrustKeysFromHTTPS bool
	// RootCAs replaces the system roots (tests; rkt has no flag, but
	// SSL_CERT_FILE is honoured as Go does).
	RootCAs *x509.CertPool
	// DialContext replaces the dialer (tests route names to 127.0.0.1).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// HTTPClient replaces the client built from the options above.
	HTTPClient *http.Client
	// Progress receives progress: bars when it is a terminal, one line per
	// download otherwise; nil is silent.
	Progress io.Writer
	// Debug adds detail to Progress (URLs tried, cache decisions).
	Debug bool
	// DownloadDir keeps partial downloads between runs (resume); it
	// should be on the same machine as the store, e.g. <data dir>/tmp/fetch.
	// Empty means a directory under os.TempDir().
	DownloadDir string
	// DockerLayers keeps docker layers for reuse by later conversions
	// (docker.LayerCache); nil downloads every layer every time.
	DockerLayers *docker.LayerCache
	// Retries is how many times an interrupted download is resumed before
	// giving up (default 3; negative: none).
	Retries int
	// StallTimeout aborts a download that receives nothing for that long
	// (default 60s).
	StallTimeout time.Duration
	// NoRender imports without rendering the image's tree in the same
	// pass (rkt fetch: the tree is made when a pod first uses the image).
	NoRender bool
	// OS and Arch default the os and arch labels of appc names (default:
	// this machine's, in appc's spelling).
	OS, Arch string
}

// Fetcher fetches images into a store. It is safe for sequential use; run
// one per goroutine.
type Fetcher struct {
	opts   Options
	client *http.Client
	prog   *progress
	// onVerified, when set, sees every image that passed the checks.
	onVerified func(*Verified)
	// txn is what the fetch under way added to the store.
	txn txn
}

// txn records the images one FetchImage added, to take them back when the
// fetch fails after some were stored (a dependency that cannot be had):
// a failed fetch leaves the store as it was.
type txn struct {
	start time.Time
	added []string
}

// imported notes an image the store committed. One it already had keeps
// its earlier import time and is not ours to take back.
func (f *Fetcher) imported(info store.ImageInfo) {
	if !f.txn.start.IsZero() && !info.ImportTime.Before(f.txn.start) {
		f.txn.added = append(f.txn.added, info.ID)
	}
}

// rollback removes what the failed fetch added, newest first.
func (f *Fetcher) rollback() {
	rm, ok := f.opts.Store.(remover)
	if !ok {
		return
	}
	for i := len(f.txn.added) - 1; i >= 0; i-- {
		if err := rm.Remove(f.txn.added[i]); err != nil {
			f.prog.Warn("warning: removing %s, fetched for a fetch that failed: %v", f.txn.added[i], err)
		}
	}
	f.txn.added = nil
}

// Errors a fetch can end with, besides those of aci/trust, aci/discovery
// and aci/store, which are wrapped as they come.
var (
	// ErrInsecure: the fetch needs an --insecure-options value it lacks.
	ErrInsecure = errors.New("refused as insecure")
	// ErrNotInStore: PullNever and the image is not in the store.
	ErrNotInStore = errors.New("image not in the store")
	// ErrMismatch: the image is not what was asked for (name, labels,
	// image ID).
	ErrMismatch = errors.New("image is not the one asked for")
	// ErrDownload: the server or the network failed the download.
	ErrDownload = errors.New("download failed")
	// ErrBadReference: the image argument cannot be parsed
	// (aci/imagearg's).
	ErrBadReference = imagearg.ErrBadReference
)

// New returns a Fetcher. It fails when the options contradict each other.
func New(opts Options) (*Fetcher, error) {
	if opts.Store == nil {
		return nil, errors.New("fetcher without a store")
	}
	if opts.PullPolicy == "" {
		opts.PullPolicy = PullNew
	}
	if _, err := ParsePullPolicy(string(opts.PullPolicy)); err != nil {
		return nil, err
	}
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	if opts.StallTimeout == 0 {
		opts.StallTimeout = 60 * time.Second
	}
	if opts.OS == "" || opts.Arch == "" {
		os, arch, err := types.ToAppcOSArch(runtime.GOOS, runtime.GOARCH, "")
		if err != nil {
			return nil, fmt.Errorf("this machine's os/arch: %w", err)
		}
		if opts.OS == "" {
			opts.OS = os
		}
		if opts.Arch == "" {
			opts.Arch = arch
		}
	}
	if opts.DownloadDir == "" {
		opts.DownloadDir = filepath.Join(os.TempDir(), "rkt-downloads")
	}
	f := &Fetcher{opts: opts, prog: newProgress(opts.Progress, opts.Debug)}
	f.client = opts.HTTPClient
	if f.client == nil {
		c, err := NewHTTPClient(ClientOptions{
			InsecureTLS: opts.Insecure.TLS,
			AllowHTTP:   opts.Insecure.HTTP,
			RootCAs:     opts.RootCAs,
			DialContext: opts.DialContext,
		})
		if err != nil {
			return nil, err
		}
		f.client = c
	}
	return f, nil
}

// HTTPClient is the client the fetcher uses (for `rkt trust` to share).
func (f *Fetcher) HTTPClient() *http.Client { return f.client }

// Header returns the configured credentials for u's host, over https only:
// credentials never travel in clear text.
func (f *Fetcher) Header(u *url.URL) http.Header {
	return AuthHeaders(f.opts.Config)(u)
}

// AuthHeaders returns the function giving cfg's credentials for a URL
// (https only), as discovery and trust.TrustOptions.Header take it.
func AuthHeaders(cfg *config.Config) func(u *url.URL) http.Header {
	return func(u *url.URL) http.Header {
		if u.Scheme != "https" {
			return nil
		}
		return cfg.AuthHeader(u.Host)
	}
}

// FetchImage fetches one image argument as the CLI takes it: a path, a
// file://, https:// or http:// URL, an appc name (example.com/app:1.0,
// labels after commas), or docker://... / docker:... . sigPath is the
// --signature given for it ("" for the default: <image>.asc next to a file
// or URL, or the discovered one). It returns the image ID in the store.
func (f *Fetcher) FetchImage(ctx context.Context, ref string, sigPath string) (string, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	f.txn = txn{start: time.Now()}
	id, err := f.fetchRef(ctx, r, sigPath)
	if err != nil {
		f.rollback()
		return "", err
	}
	f.txn = txn{}
	return id, nil
}

// fetchRef fetches the image r names and its dependencies.
func (f *Fetcher) fetchRef(ctx context.Context, r *Ref, sigPath string) (string, error) {
	var id string
	var err error
	switch r.Kind {
	case KindID:
		return f.storedID(r)
	case KindName:
		id, err = f.fetchApp(ctx, r.App, r.Raw, sigPath)
	default:
		var src source
		if src, err = f.source(r, sigPath); err == nil {
			id, err = f.fetchSource(ctx, src)
		}
	}
	if err != nil {
		return "", err
	}
	return id, f.fetchDeps(ctx, id)
}

// source makes r's source.
func (f *Fetcher) source(r *Ref, sigPath string) (source, error) {
	newSrc, ok := sources[r.Kind]
	if !ok {
		return nil, fmt.Errorf("image %q: %w", r.Raw, ErrBadReference)
	}
	return newSrc(f, r, sigPath)
}

// storedID is an image ID (or a prefix of one), which only the store has.
func (f *Fetcher) storedID(r *Ref) (string, error) {
	id, err := f.opts.Store.ResolveKey(r.Raw)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", r.Raw, err)
	}
	return id, nil
}

func (f *Fetcher) warnInsecure() {
	if f.opts.Insecure.Image {
		f.prog.Warn("warning: image signature verification is disabled (--insecure-options=image)")
	}
	if f.opts.Insecure.TLS {
		f.prog.Warn("warning: TLS certificate verification is disabled (--insecure-options=tls)")
	}
}
