package tests

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/aci/fetch/fetchtest"
	"github.com/rktng/rkt/aci/trust"
	"github.com/rktng/rkt/tests/testutil"
)

// The fetch tests serve images the way a real deployment does (appc names
// found over https, signatures next to images, keys announced by
// discovery) from servers on 127.0.0.1 only. appc names need https on port
// 443 of a host name: rkt then runs in a private mount namespace whose
// /etc/hosts maps siteHosts to 127.0.0.1, so the real /etc/hosts is never
// touched. Tests on port 443 cannot run side by side, so they are not
// parallel; the others serve on ports of their own.

// siteHosts are the names a site on port 443 answers for.
var siteHosts = []string{"example.com", "example.org"}

// site is an HTTPS server (with a plain-HTTP twin) on 127.0.0.1 with its own
// CA, routes that a test may replace at any time, and a log of the
// requests it received.
type site struct {
	t      *testing.T
	srv    *fetchtest.Server
	caFile string
	// HTTPS and Plain are the base URLs ("https://127.0.0.1:PORT", or
	// "https://example.com" on port 443).
	HTTPS, Plain string
	on443        bool
	hostsFile    string

	mu        sync.Mutex
	routes    map[string]http.Handler
	discovery string // served for any ?ac-discovery=1 without a route
	log       []request
}

// request is one logged request.
type request struct {
	Method, Path, Query string
	Header              http.Header
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{t: t, srv: fetchtest.NewServer(t, siteHosts...), routes: map[string]http.Handler{}}
	s.srv.Mux.HandleFunc("/", s.serve)
	s.caFile = s.srv.WriteCAFile(t)
	s.HTTPS, s.Plain = s.srv.TLS.URL, s.srv.Plain.URL
	return s
}

// newSite443 is newSite also listening on 127.0.0.1:443, for appc names;
// it skips the test when the port is taken.
func newSite443(t *testing.T) *site {
	t.Helper()
	s := newSite(t)
	ln, err := net.Listen("tcp", "127.0.0.1:443")
	if err != nil {
		t.Skipf("appc discovery needs https on 127.0.0.1:443, which is not available: %v", err)
	}
	hs := &http.Server{Handler: s.srv.Mux, TLSConfig: s.srv.TLS.TLS.Clone(), ErrorLog: s.srv.TLS.Config.ErrorLog}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })
	s.on443 = true
	s.HTTPS = "https://" + siteHosts[0]
	s.hostsFile = filepath.Join(t.TempDir(), "hosts")
	hosts := "127.0.0.1 localhost " + strings.Join(siteHosts, " ") + "\n::1 localhost\n"
	if err := os.WriteFile(s.hostsFile, []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *site) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.log = append(s.log, request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()})
	h := s.routes[r.URL.Path]
	page := s.discovery
	s.mu.Unlock()
	switch {
	case h != nil:
		h.ServeHTTP(w, r)
	case page != "" && r.URL.Query().Get("ac-discovery") == "1":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	default:
		http.NotFound(w, r)
	}
}

// route serves path with h, replacing what served it before.
func (s *site) route(path string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[path] = h
}

// file serves data at path with Range support and the given headers (an
// ETag makes downloads resumable and revalidatable).
func (s *site) file(path string, data []byte, header ...string) {
	s.route(path, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		if r.Method == http.MethodGet && r.Header.Get("If-None-Match") != "" && r.Header.Get("If-None-Match") == w.Header().Get("ETag") {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	})
}

// setDiscovery sets the page served for every ?ac-discovery=1 request.
func (s *site) setDiscovery(page string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discovery = page
}

// reset drops every route, the discovery page and the log.
func (s *site) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = map[string]http.Handler{}
	s.discovery = ""
	s.log = nil
}

// requests returns the logged requests for path ("" for all).
func (s *site) requests(path string) []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []request
	for _, r := range s.log {
		if path == "" || r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (s *site) clearLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// ctx returns c running rkt with the site's CA trusted (SSL_CERT_FILE) and,
// for a site on port 443, in a private mount namespace where /etc/hosts
// sends siteHosts to 127.0.0.1. The returned Ctx shares c's directories,
// and c's cleanup covers the processes it starts.
func (s *site) ctx(c *testutil.Ctx) *testutil.Ctx {
	c.T.Helper()
	var sh strings.Builder
	sh.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&sh, "export SSL_CERT_FILE=%s\n", shellQuote(s.caFile))
	if s.on443 {
		// The harness points HTTPS_PROXY at a closed port to keep rkt
		// off the network; these names are loopback here.
		fmt.Fprintf(&sh, "export NO_PROXY=%s\n", shellQuote(strings.Join(siteHosts, ",")))
		fmt.Fprintf(&sh, "exec unshare -m --propagation private sh -c 'mount --bind \"$0\" /etc/hosts && exec \"$@\"' %s %s \"$@\"\n",
			shellQuote(s.hostsFile), shellQuote(c.A.Rkt))
	} else {
		fmt.Fprintf(&sh, "exec %s \"$@\"\n", shellQuote(c.A.Rkt))
	}
	wrapper := c.WriteFile(fmt.Sprintf("rkt-via-site-%d.sh", time.Now().UnixNano()), sh.String())
	if err := os.Chmod(wrapper, 0o755); err != nil {
		c.T.Fatal(err)
	}
	a := *c.A
	a.Rkt = wrapper
	cc := *c
	cc.A = &a
	return &cc
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// signer is a signing key made for a test, with its public key in a file.
type signer struct {
	e       *openpgp.Entity
	FP      string // as rkt prints it: "8B86 DE38 ..."
	Pub     []byte // armored public key
	PubFile string
}

func newSigner(t *testing.T, c *testutil.Ctx, name string, opts trust.KeyOptions) *signer {
	t.Helper()
	e, err := trust.NewSigningKey(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return signerOf(t, c, e)
}

func signerOf(t *testing.T, c *testutil.Ctx, e *openpgp.Entity) *signer {
	t.Helper()
	pub, err := trust.ArmorPublicKey(e)
	if err != nil {
		t.Fatal(err)
	}
	fp := trust.Fingerprint(e)
	return &signer{e: e, FP: trust.FormatFingerprint(fp), Pub: pub, PubFile: c.WriteBytes("key-"+fp+".gpg", pub)}
}

func (k *signer) sign(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := trust.SignDetached(&b, k.e, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// appImage is an inspect image named name with the version label given,
// running /inspect with args.
func appImage(c *testutil.Ctx, name, version string, args ...string) *testutil.Image {
	im := c.A.InspectImage(name, args...)
	for i, l := range im.Manifest.Labels {
		if l.Name == "version" {
			im.Manifest.Labels[i].Value = version
		}
	}
	return im
}

// dependOn makes im depend on the image name:version (found by discovery).
func dependOn(im *testutil.Image, name, version string) {
	im.Manifest.Dependencies = append(im.Manifest.Dependencies, types.Dependency{
		ImageName: *types.MustACIdentifier(name),
		Labels:    types.Labels{{Name: "version", Value: version}},
	})
}

func packImage(t *testing.T, im *testutil.Image) []byte {
	t.Helper()
	b, err := im.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// errorLine matches rkt's error line, "rkt fetch: ..." ("rkt: warning:"
// lines are not errors).
var errorLine = regexp.MustCompile(`^rkt( [a-z-]+)*: `)

// progressPrefixes start the lines a fetch may print besides its error.
var progressPrefixes = []string{"Downloading ", "Downloaded ", "Download of ", "Another rkt process", "rkt: warning: "}

// expectRefused checks that rkt refused: exit 254, one error line
// mentioning each of want (case-insensitive), and only progress reports
// besides. Whether the store stayed clean is checked by expectStoreEmpty.
func expectRefused(c *testutil.Ctx, r testutil.Result, want ...string) string {
	c.T.Helper()
	c.Expect(r, 254)
	var errs, other []string
	for _, l := range strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n") {
		switch {
		case strings.TrimSpace(l) == "":
		case errorLine.MatchString(l) && !strings.HasPrefix(l, "rkt: warning: "):
			errs = append(errs, l)
		default:
			ok := false
			for _, p := range progressPrefixes {
				ok = ok || strings.HasPrefix(l, p)
			}
			if !ok {
				other = append(other, l)
			}
		}
	}
	if len(errs) != 1 || len(other) > 0 {
		c.T.Errorf("want one error line and only progress besides, got errors %q and other lines %q: %v", errs, other, r)
	}
	if len(errs) == 0 {
		return ""
	}
	line := errs[len(errs)-1]
	for _, w := range want {
		if !strings.Contains(strings.ToLower(line), strings.ToLower(w)) {
			c.T.Errorf("error %q does not mention %q", line, w)
		}
	}
	return line
}

// fetchedID is the image ID a successful fetch printed last.
func fetchedID(c *testutil.Ctx, r testutil.Result) string {
	c.T.Helper()
	return c.FetchedID(r)
}

// runArgs are `rkt run` with the stage1 under test, without the
// --insecure-options=image that testutil's Run adds: these images are
// verified.
func runArgs(c *testutil.Ctx, args ...string) []string {
	return append([]string{"run", "--stage1-path=" + c.Stage1().ACI}, args...)
}

// waitFor polls cond every 20ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// abortResponse ends a response abruptly, after what was written reached
// the client: no clean end of body, as when a server or the network fails
// mid-download.
func abortResponse(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	panic(http.ErrAbortHandler)
}
