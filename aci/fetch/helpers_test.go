package fetch

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/aci/archive"
	"github.com/rktng/rkt/aci/fetch/fetchtest"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// memStore is an in-memory Store that reads images the way aci/store
// does: decompress, validate, hash the whole stream, then commit.
type memStore struct {
	mu      sync.Mutex
	images  map[string]*memImage
	remotes map[string]store.Remote
	order   int
}

type memImage struct {
	info     store.ImageInfo
	manifest *schema.ImageManifest
	seq      int
}

func newMemStore() *memStore {
	return &memStore{images: map[string]*memImage{}, remotes: map[string]store.Remote{}}
}

func (s *memStore) Import(r io.Reader, opts store.ImportOptions) (store.ImageInfo, error) {
	dec, err := archive.NewReader(r)
	if err != nil {
		return store.ImageInfo{}, err
	}
	defer dec.Close()
	h := sha512.New()
	tee := io.TeeReader(dec, h)
	img, err := archive.Scan(tee, nil)
	if err != nil {
		return store.ImageInfo{}, err
	}
	n, err := io.Copy(io.Discard, tee)
	if err != nil {
		return store.ImageInfo{}, err
	}
	id := "sha512-" + hex.EncodeToString(h.Sum(nil))
	s.mu.Lock()
	defer s.mu.Unlock()
	if im, ok := s.images[id]; ok {
		im.info.Latest = im.info.Latest || opts.Latest
		return im.info, nil
	}
	s.order++
	im := &memImage{manifest: img.Manifest, seq: s.order, info: store.ImageInfo{
		ID: id, Name: img.Manifest.Name.String(), Labels: img.Manifest.Labels, ImportTime: time.Now(), Size: n, Latest: opts.Latest,
	}}
	s.images[id] = im
	return im.info, nil
}

func (s *memStore) ResolveKey(k string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for id := range s.images {
		if strings.HasPrefix(id, k) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s: %w", k, store.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s: %w", k, store.ErrAmbiguous)
}

func (s *memStore) GetACI(name types.ACIdentifier, labels types.Labels) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, bestSeq := "", -1
	for id, im := range s.images {
		if im.manifest.Name != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if v, has := im.manifest.GetLabel(l.Name.String()); !has || v != l.Value {
				ok = false
			}
		}
		if ok && im.seq > bestSeq {
			best, bestSeq = id, im.seq
		}
	}
	if best == "" {
		return "", fmt.Errorf("%s: %w", name, store.ErrNotFound)
	}
	return best, nil
}

func (s *memStore) Info(key string) (store.ImageInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if im, ok := s.images[key]; ok {
		return im.info, nil
	}
	return store.ImageInfo{}, fmt.Errorf("%s: %w", key, store.ErrNotFound)
}

func (s *memStore) GetImageManifest(key string) (*schema.ImageManifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if im, ok := s.images[key]; ok {
		return im.manifest, nil
	}
	return nil, fmt.Errorf("%s: %w", key, store.ErrNotFound)
}

func (s *memStore) GetRemote(u string) (*store.Remote, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.remotes[u]; ok {
		return &r, nil
	}
	return nil, fmt.Errorf("%s: %w", u, store.ErrNotFound)
}

func (s *memStore) SetRemote(r *store.Remote) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remotes[r.URL] = *r
	return nil
}

func (s *memStore) RemoveRemote(u string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.remotes, u)
	return nil
}

func (s *memStore) Remove(key string, _ ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.images[key]; !ok {
		return fmt.Errorf("%s: %w", key, store.ErrNotFound)
	}
	delete(s.images, key)
	for u, r := range s.remotes {
		if r.BlobKey == key {
			delete(s.remotes, u)
		}
	}
	return nil
}

func (s *memStore) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, im := range s.images {
		out = append(out, im.info.Name)
	}
	sort.Strings(out)
	return out
}

// testImage builds an ACI named name with labels and a small rootfs.
func testImage(t testing.TB, name string, labels map[string]string, gz bool, mutate ...func(*schema.ImageManifest)) []byte {
	t.Helper()
	m, err := acibuild.Manifest(name, labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range mutate {
		f(m)
	}
	var opts []acibuild.Option
	if gz {
		opts = append(opts, acibuild.WithGzip())
	}
	var buf bytes.Buffer
	files := []acibuild.File{
		{Path: "etc/hello", Mode: 0o644, Data: []byte("hello from " + name + "\n")},
		{Path: "bin/data", Mode: 0o755, Data: bytes.Repeat([]byte(name), 20000)},
	}
	if err := acibuild.Build(&buf, m, files, opts...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func imageID(t testing.TB, aci []byte) string {
	t.Helper()
	dec, err := archive.NewReader(bytes.NewReader(aci))
	if err != nil {
		t.Fatal(err)
	}
	h := sha512.New()
	io.Copy(h, dec)
	return "sha512-" + hex.EncodeToString(h.Sum(nil))
}

// signer is a key trusted for a prefix in a fresh keystore.
type signer struct {
	key *openpgp.Entity
	ks  *trust.Keystore
	dir string
}

func newSigner(t testing.TB, prefix string) *signer {
	t.Helper()
	k, err := trust.NewSigningKey("Test Signer", trust.KeyOptions{Email: "signer@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ks := trust.New("", dir)
	pub, _ := trust.ArmorPublicKey(k)
	kf := filepath.Join(t.TempDir(), "key.gpg")
	os.WriteFile(kf, pub, 0o644)
	if _, err := ks.Trust(context.Background(), trust.TrustOptions{Prefix: prefix, Keys: []string{kf}, SkipFingerprintReview: true}); err != nil {
		t.Fatal(err)
	}
	return &signer{key: k, ks: ks, dir: dir}
}

func (s *signer) sign(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := trust.SignDetached(&buf, s.key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// site is a loopback web site serving files with ETag and Range support,
// counting requests per path.
type site struct {
	*fetchtest.Server
	mu       sync.Mutex
	files    map[string][]byte
	etags    map[string]string
	requests map[string]int
	headers  map[string][]http.Header
	bodies   atomic.Int64 // bytes of .aci bodies served
}

func newSite(t testing.TB) *site {
	s := &site{Server: fetchtest.NewServer(t, "example.com", "mirror.example.com"),
		files: map[string][]byte{}, etags: map[string]string{}, requests: map[string]int{}, headers: map[string][]http.Header{}}
	s.Mux.HandleFunc("/", s.serve)
	return s
}

func (s *site) put(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = data
	sum := sha512.Sum512(data)
	s.etags[path] = `"` + hex.EncodeToString(sum[:8]) + `"`
}

func (s *site) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

func (s *site) serve(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Path
	if r.URL.RawQuery != "" {
		key += "?" + r.URL.RawQuery
	}
	s.mu.Lock()
	s.requests[key]++
	s.headers[key] = append(s.headers[key], r.Header.Clone())
	data, ok := s.files[key]
	etag := s.etags[key]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(key, ".aci") {
		w.Header().Set("ETag", etag)
		w = countingWriter{w, &s.bodies}
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// discovery publishes a discovery page for prefix with the usual template.
func (s *site) discovery(prefix string) {
	s.put("/"+strings.TrimPrefix(strings.TrimPrefix(prefix, "example.com"), "/")+"?ac-discovery=1", []byte(fetchtest.DiscoveryPage(
		[2]string{"ac-discovery", "example.com https://example.com/images/{name}-{version}-{os}-{arch}.{ext}"},
		[2]string{"ac-discovery-pubkeys", "example.com https://example.com/pubkeys.gpg"},
	)))
}

// publish serves a signed image where the discovery template says.
func (s *site) publish(name, version string, aci, sig []byte) string {
	p := fmt.Sprintf("/images/%s-%s-linux-amd64.aci", name, version)
	s.put(p, aci)
	if sig != nil {
		s.put(p+".asc", sig)
	}
	return p
}

func newFetcher(t testing.TB, s *site, st Store, ks *trust.Keystore, mod ...func(*Options)) (*Fetcher, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	o := Options{
		Store:        st,
		Keystore:     ks,
		RootCAs:      s.Pool,
		DialContext:  s.DialContext,
		Progress:     &out,
		DownloadDir:  t.TempDir(),
		OS:           "linux",
		Arch:         "amd64",
		StallTimeout: 5 * time.Second,
	}
	for _, m := range mod {
		m(&o)
	}
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f, &out
}

// testImageSized builds an uncompressed image of about size bytes of
// incompressible content.
func testImageSized(t testing.TB, size int) []byte {
	t.Helper()
	m, err := acibuild.Manifest("example.com/big", nil)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	var x uint64 = 88172645463325252
	for i := 0; i+8 <= len(data); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(data[i:], x)
	}
	var buf bytes.Buffer
	if err := acibuild.Build(&buf, m, []acibuild.File{{Path: "blob", Mode: 0o644, Data: data}}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
