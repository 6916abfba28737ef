package fetchtest

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Registry is go-containerregistry's in-process registry, counting the
// blob downloads it serves and optionally demanding basic auth.
type Registry struct {
	inner http.Handler
	// User and Password, when set, are required.
	User, Password string

	mu       sync.Mutex
	blobGets map[string]int // path -> count
}

// NewRegistry returns an empty registry handler.
func NewRegistry() *Registry {
	return &Registry{inner: registry.New(registry.Logger(log.New(io.Discard, "", 0))), blobGets: map[string]int{}}
}

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.User != "" {
		u, p, ok := req.BasicAuth()
		if !ok || u != r.User || p != r.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
	}
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
		r.mu.Lock()
		r.blobGets[req.URL.Path]++
		r.mu.Unlock()
	}
	r.inner.ServeHTTP(w, req)
}

// BlobGets is how many blob GETs were served, layers and configs alike.
func (r *Registry) BlobGets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.blobGets {
		n += c
	}
	return n
}

// LayerGets counts GETs of the given layers' blobs.
func (r *Registry) LayerGets(t testing.TB, img v1.Image) int {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range layers {
		d, _ := l.Digest()
		for p, c := range r.blobGets {
			if strings.HasSuffix(p, "/blobs/"+d.String()) {
				n += c
			}
		}
	}
	return n
}

// TarEntry is a file of a test layer: a regular file with Body, a
// directory when Dir, or a whiteout by its name (".wh.x").
type TarEntry struct {
	Name string
	Body string
	Dir  bool
}

// Layer builds a gzip-compressed layer.
func Layer(t testing.TB, entries ...TarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.Body))}
		if e.Dir {
			h.Mode, h.Typeflag, h.Size = 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.Body))
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image builds an image of the layers (lowest first) with the config and
// platform given.
func Image(t testing.TB, cfg v1.Config, platform v1.Platform, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// Push uploads img (or an index of imgs by platform, when more than one)
// to ref through rt.
func Push(t testing.TB, ref string, rt http.RoundTripper, user, password string, imgs ...v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.WeakValidation, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{remote.WithTransport(rt)}
	if user != "" {
		opts = append(opts, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: user, Password: password})))
	}
	if len(imgs) == 1 {
		if err := remote.Write(r, imgs[0], opts...); err != nil {
			t.Fatal(err)
		}
		d, _ := imgs[0].Digest()
		return d
	}
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cf, _ := img.ConfigFile()
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	return d
}

// RawLayer is a layer of data as it is, which need not be a tar: a damaged
// image for tests of what refuses it.
func RawLayer(t testing.TB, data []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}
