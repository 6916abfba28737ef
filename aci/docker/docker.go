// Package docker pulls images from a docker registry (v2 API, through
// github.com/google/go-containerregistry) and converts them into one ACI:
// the layers squashed with their whiteouts applied, and a manifest named and
// annotated as rkt's docker2aci did (name from the repository, labels
// version, os, arch; ports named "80-tcp"; appc.io/docker/* annotations),
// so that tools written against rkt's docker images keep working.
//
// Resolve reads only the manifest (and, for a multi-platform image, the
// index), so a caller can tell from the manifest digest that an image is
// already converted before any layer is downloaded. Image.WriteACI then
// downloads the layers, each checked against its digest, and writes the ACI;
// with a LayerCache it keeps them by digest and takes from it the layers an
// earlier conversion brought (a shared base image is downloaded once).
package docker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/rktng/rkt/aci/docker/layercache"
)

// ErrInsecure: the registry answers over plain HTTP only and that was not
// allowed.
var ErrInsecure = errors.New("plain-HTTP registry refused")

// Progress reports layer downloads.
type Progress interface {
	StartLayer(label string, total int64) LayerProgress
}

// LayerProgress follows one layer download.
type LayerProgress interface {
	Add(n int)
	Finish(err error)
}

// Options configure pulling.
// LayerCache is aci/docker/layercache's Cache: the layers kept for the
// next conversion.
type LayerCache = layercache.Cache

type Options struct {
	// Transport carries the requests (TLS roots, dialer, proxy); nil is
	// http.DefaultTransport.
	Transport http.RoundTripper
	// AllowHTTP lets the registry be spoken to over plain HTTP.
	AllowHTTP bool
	// Credentials returns the user and password for a registry host.
	Credentials func(registry string) (user, password string, ok bool)
	// Platform picks the image of a multi-platform index; default: this
	// machine's (linux/amd64 here).
	Platform *v1.Platform
	// WorkDir holds downloaded layers while converting.
	WorkDir string
	// Layers, when set, keeps downloaded layers for later conversions
	// and gives back those it has instead of downloading them.
	Layers   *LayerCache
	Progress Progress
}

// Reference is a parsed docker reference.
type Reference struct {
	ref name.Reference
	// Original is the reference as given (without docker://).
	Original string
}

// ParseReference parses "busybox", "quay.io/org/app:tag",
// "registry:5000/app@sha256:...": docker's defaults apply (Docker Hub,
// library/, latest).
func ParseReference(s string) (*Reference, error) {
	r, err := name.ParseReference(s, name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("docker reference %q: %w", s, err)
	}
	return &Reference{ref: r, Original: s}, nil
}

// Pinned tells whether the reference names a digest: then what is
// downloaded is verified against it, and needs no other trust.
func (r *Reference) Pinned() bool {
	_, ok := r.ref.(name.Digest)
	return ok
}

// String is the canonical reference: registry/repository:tag or @digest.
func (r *Reference) String() string { return r.ref.Name() }

// Registry is the registry host as docker2aci named it: Docker Hub is
// "registry-1.docker.io".
func (r *Reference) Registry() string {
	reg := r.ref.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		return "registry-1.docker.io"
	}
	return reg
}

// Repository is the repository path ("library/busybox").
func (r *Reference) Repository() string { return r.ref.Context().RepositoryStr() }

// Tag is the tag, or "" for a digest reference.
func (r *Reference) Tag() string {
	if t, ok := r.ref.(name.Tag); ok {
		return t.TagStr()
	}
	return ""
}

// Digest is the pinned digest, or "" for a tag reference.
func (r *Reference) Digest() string {
	if d, ok := r.ref.(name.Digest); ok {
		return d.DigestStr()
	}
	return ""
}

// Image is a resolved image: its manifest is known, its layers are not
// downloaded yet.
type Image struct {
	Ref *Reference
	// Digest is the digest of the (platform's) image manifest.
	Digest v1.Hash
	img    v1.Image
	opts   Options
}

// remoteOptions builds go-containerregistry's options.
func (o Options) remoteOptions(ctx context.Context) []remote.Option {
	rt := o.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	rt = &schemeGuard{rt: rt, allowHTTP: o.AllowHTTP}
	platform := o.Platform
	if platform == nil {
		platform = HostPlatform()
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(rt),
		remote.WithPlatform(*platform),
		remote.WithUserAgent("rkt"),
	}
	if o.Credentials != nil {
		opts = append(opts, remote.WithAuthFromKeychain(keychain{o.Credentials}))
	}
	return opts
}

// HostPlatform is this machine's platform in docker's terms.
func HostPlatform() *v1.Platform {
	p := &v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// keychain adapts rkt's dockerAuth configuration.
type keychain struct {
	creds func(registry string) (string, string, bool)
}

func (k keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	reg := res.RegistryStr()
	if user, pass, ok := k.creds(reg); ok {
		return authn.FromConfig(authn.AuthConfig{Username: user, Password: pass}), nil
	}
	return authn.Anonymous, nil
}

// schemeGuard refuses plain-HTTP requests unless allowed: go-containerregistry
// falls back to HTTP on its own for loopback and private-network registries.
type schemeGuard struct {
	rt        http.RoundTripper
	allowHTTP bool
}

func (g *schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.allowHTTP {
		return nil, fmt.Errorf("%s: %w (use --insecure-options=http)", req.URL.Host, ErrInsecure)
	}
	return g.rt.RoundTrip(req)
}

// Resolve fetches the manifest of ref (picking the platform's image from a
// multi-platform index), without downloading layers.
func Resolve(ctx context.Context, ref *Reference, opts Options) (*Image, error) {
	desc, err := remote.Get(ref.ref, opts.remoteOptions(ctx)...)
	if err != nil {
		return nil, describe(ref, "reading manifest", err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, describe(ref, "resolving image", err)
	}
	dg, err := img.Digest()
	if err != nil {
		return nil, describe(ref, "reading manifest digest", err)
	}
	return &Image{Ref: ref, Digest: dg, img: img, opts: opts}, nil
}

// FromImage is an image already at hand (an OCI image layout that
// aci/fetch read), named by ref, to be converted as a pulled one is.
func FromImage(ref *Reference, img v1.Image, opts Options) (*Image, error) {
	dg, err := img.Digest()
	if err != nil {
		return nil, describe(ref, "reading manifest digest", err)
	}
	return &Image{Ref: ref, Digest: dg, img: img, opts: opts}, nil
}

// describe names the image and simplifies registry errors.
func describe(ref *Reference, op string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		msg := fmt.Sprintf("docker image %s: %s: HTTP %d", ref.Original, op, te.StatusCode)
		if len(te.Errors) > 0 {
			msg += ": " + te.Errors[0].Message
		}
		if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
			msg += fmt.Sprintf(" (credentials for %s go in auth.d as a dockerAuth entry)", ref.ref.Context().RegistryStr())
		}
		return fmt.Errorf("%s: %w", msg, err)
	}
	return fmt.Errorf("docker image %s: %s: %w", ref.Original, op, err)
}

// Canonical is registry/repository@digest, a key for the image's content.
func (im *Image) Canonical() string {
	return im.Ref.ref.Context().Name() + "@" + im.Digest.String()
}
