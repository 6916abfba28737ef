package tests

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rktng/rkt/aci/fetch/fetchtest"
	"github.com/rktng/rkt/aci/trust"
	"github.com/rktng/rkt/tests/testutil"
)

// TestFetchNetworkFailures fetches appc names whose discovery or download
// fails: each ends with exit 254, one error line naming the URL and what
// came back, and an empty store.
func TestFetchNetworkFailures(t *testing.T) {
	s := newSite443(t)
	c0 := testutil.New(t)
	key := newSigner(t, c0, "signer", trust.KeyOptions{})
	img := packImage(t, appImage(c0, "example.com/app", "1.0").AddFile("data.bin", strings.Repeat("x", 256<<10), 0o644))
	sig := key.sign(t, img)
	path := imagePath(t, "example.com/app", "1.0")
	appURL := "https://example.com" + path

	cases := []struct {
		name  string
		setup func()
		want  []string
	}{
		{"discovery page without meta tags", func() {
			s.setDiscovery("<html><head><title>not a discovery page</title></head><body>hello</body></html>")
		}, []string{"example.com/app?ac-discovery=1", "example.com?ac-discovery=1"}},
		{"discovery meta for another prefix", func() {
			s.setDiscovery(fetchtest.DiscoveryPage([2]string{"ac-discovery", "example.org https://example.org/{name}.{ext}"}))
		}, []string{"example.com/app?ac-discovery=1", "example.org"}},
		{"discovery meta without template, page cut short", func() {
			s.setDiscovery(`<html><head><meta name="ac-discovery" content="example.com"><meta name="ac-discovery" content=`)
		}, []string{"example.com/app?ac-discovery=1"}},
		{"image 404", func() {
			s.setDiscovery(discoveryPage())
			s.file(path+".asc", sig)
		}, []string{appURL, "404"}},
		{"image 500", func() {
			s.setDiscovery(discoveryPage())
			s.route(path, func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "boom", http.StatusInternalServerError)
			})
			s.file(path+".asc", sig)
		}, []string{appURL, "500"}},
		{"truncated download", func() {
			s.setDiscovery(discoveryPage())
			s.route(path, truncatingHandler(img, len(img)/2))
			s.file(path+".asc", sig)
		}, []string{appURL, "retries", "closed after"}},
		{"redirect loop", func() {
			s.setDiscovery(discoveryPage())
			s.route(path, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, path, http.StatusFound)
			})
			s.file(path+".asc", sig)
		}, []string{appURL, "redirects"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.reset()
			c := s.ctx(testutil.New(t))
			trustKey(c, "example.com", key)
			tc.setup()
			r := c.Rkt("fetch", "example.com/app:1.0")
			t.Logf("refused: %s", expectRefused(c, r, tc.want...))
			expectStoreEmpty(c)
		})
	}
}

// truncatingHandler serves data with an ETag and Range support, but every
// response breaks off at byte cut: resuming never gets past it.
func truncatingHandler(data []byte, cut int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			if err != nil || n > len(data) {
				http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
				return
			}
			start = n
		}
		w.Header().Set("ETag", `"truncated"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
		if start > 0 {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
			w.WriteHeader(http.StatusPartialContent)
		}
		if start < cut {
			w.Write(data[start:cut])
		}
		abortResponse(w)
	}
}

// TestFetchHTTPSURL fetches https:// URLs with the signature next to the
// image, and checks that plain http:// needs --insecure-options=http and a
// certificate from an unknown CA needs --insecure-options=tls, the
// signature being checked either way.
func TestFetchHTTPSURL(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	c0 := testutil.New(t)
	key := newSigner(t, c0, "url signer", trust.KeyOptions{})
	img := packImage(t, appImage(c0, "example.com/url-app", "1.0"))
	sig := key.sign(t, img)
	s.file("/app.aci", img, "ETag", `"v1"`)
	s.file("/app.aci.asc", sig)
	httpsURL, httpURL := s.HTTPS+"/app.aci", s.Plain+"/app.aci"
	signed := func(c *testutil.Ctx, r testutil.Result) {
		c.T.Helper()
		if id := fetchedID(c, r); id != imageID(img) {
			c.T.Errorf("fetched %s, want %s", id, imageID(img))
		}
		if !strings.Contains(r.Stderr, "Signed by") || !strings.Contains(r.Stderr, key.FP) {
			c.T.Errorf("fetch does not say who signed the image: %v", r)
		}
	}

	t.Run("signature next to the image", func(t *testing.T) {
		c := s.ctx(testutil.New(t))
		trustKey(c, "example.com", key)
		s.clearLog()
		signed(c, c.Rkt("fetch", httpsURL))
		if len(s.requests("/app.aci.asc")) != 1 {
			t.Errorf("want one download of the .asc next to the image, got %+v", s.requests(""))
		}
	})

	t.Run("key in no keyring", func(t *testing.T) {
		// Refused as soon as the signature names an unknown key; the
		// error says which image and which key.
		c := s.ctx(testutil.New(t))
		expectRefused(c, c.Rkt("fetch", httpsURL), httpsURL, key.FP, "rkt trust")
		expectStoreEmpty(c)
	})

	t.Run("local signature", func(t *testing.T) {
		c := s.ctx(testutil.New(t))
		trustKey(c, "example.com", key)
		s.clearLog()
		signed(c, c.Rkt("fetch", "--signature="+c.WriteBytes("local.asc", sig), httpsURL))
		if n := len(s.requests("/app.aci.asc")); n != 0 {
			t.Errorf("fetch with --signature still downloaded the .asc (%d times)", n)
		}
	})

	t.Run("plain http", func(t *testing.T) {
		c := s.ctx(testutil.New(t))
		trustKey(c, "example.com", key)
		s.clearLog()
		expectRefused(c, c.Rkt("fetch", httpURL), httpURL, "plain HTTP", "--insecure-options=http")
		expectStoreEmpty(c)
		if qs := s.requests(""); len(qs) != 0 {
			t.Errorf("a refused http:// fetch still asked the server: %+v", qs)
		}
		signed(c, c.Rkt("--insecure-options=http", "fetch", httpURL))
	})

	t.Run("unknown CA", func(t *testing.T) {
		// Without the site's CA: the harness's rkt, not the site's.
		c := testutil.New(t)
		trustKey(c, "example.com", key)
		expectRefused(c, c.Rkt("fetch", httpsURL), httpsURL, "certificate")
		expectStoreEmpty(c)
		r := c.Rkt("--insecure-options=tls", "fetch", httpsURL)
		signed(c, r)
		if !strings.Contains(r.Stderr, "TLS certificate verification is disabled") {
			t.Errorf("no warning with --insecure-options=tls: %v", r)
		}
	})
}

// TestFetchCachingAndPullPolicy checks, from the server's request log,
// that rkt revalidates with the ETag, honours Cache-Control max-age, and
// follows --pull-policy new|update|never as rkt did.
func TestFetchCachingAndPullPolicy(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	c := s.ctx(testutil.New(t))
	key := newSigner(t, c, "cache signer", trust.KeyOptions{})
	trustKey(c, "example.com", key)
	v1 := packImage(t, appImage(c, "example.com/cached", "1.0"))
	v2 := packImage(t, appImage(c, "example.com/cached", "2.0"))
	s.file("/etag.aci", v1, "ETag", `"v1"`)
	s.file("/etag.aci.asc", key.sign(t, v1))
	s.file("/fresh.aci", v1, "ETag", `"f1"`, "Cache-Control", "max-age=3600")
	s.file("/fresh.aci.asc", key.sign(t, v1))
	etagURL, freshURL := s.HTTPS+"/etag.aci", s.HTTPS+"/fresh.aci"

	// gets returns the GETs of path since the last call and their answers'
	// conditions (the If-None-Match sent).
	gets := func(path string) []string {
		var out []string
		for _, q := range s.requests(path) {
			out = append(out, q.Header.Get("If-None-Match"))
		}
		return out
	}
	fetch := func(args ...string) string {
		t.Helper()
		s.clearLog()
		return fetchedID(c, c.Rkt(append([]string{"fetch"}, args...)...))
	}

	if id := fetch(etagURL); id != imageID(v1) {
		t.Fatalf("first fetch: %s, want %s", id, imageID(v1))
	}
	if g := gets("/etag.aci"); len(g) != 1 || g[0] != "" {
		t.Errorf("first fetch: want one unconditional GET, got If-None-Match %q", g)
	}
	// fetch's default policy is update: revalidate with the ETag; a 304
	// keeps the stored image and downloads neither it nor its signature.
	if id := fetch(etagURL); id != imageID(v1) {
		t.Errorf("revalidated fetch: %s, want %s", id, imageID(v1))
	}
	if g := gets("/etag.aci"); len(g) != 1 || g[0] != `"v1"` {
		t.Errorf("second fetch: want one GET with If-None-Match \"v1\", got %q", g)
	}
	if n := len(s.requests("/etag.aci.asc")); n != 0 {
		t.Errorf("a 304 still downloaded the signature (%d times)", n)
	}
	// new and never use the store without asking.
	for _, p := range []string{"new", "never"} {
		if id := fetch("--pull-policy="+p, etagURL); id != imageID(v1) {
			t.Errorf("--pull-policy=%s: %s, want %s", p, id, imageID(v1))
		}
		if qs := s.requests(""); len(qs) != 0 {
			t.Errorf("--pull-policy=%s asked the server: %+v", p, qs)
		}
	}
	// never refuses what is not in the store, without asking either.
	s.clearLog()
	expectRefused(c, c.Rkt("fetch", "--pull-policy=never", freshURL), freshURL, "not in the store")
	if qs := s.requests(""); len(qs) != 0 {
		t.Errorf("--pull-policy=never asked the server: %+v", qs)
	}
	// Cache-Control: max-age keeps an image fresh: update does not ask.
	fetch(freshURL)
	if id := fetch(freshURL); id != imageID(v1) {
		t.Errorf("fresh fetch: %s, want %s", id, imageID(v1))
	}
	if qs := s.requests(""); len(qs) != 0 {
		t.Errorf("an image fresh by max-age was asked for again: %+v", qs)
	}
	// A changed image (new ETag) is downloaded by update, not by new.
	s.file("/etag.aci", v2, "ETag", `"v2"`)
	s.file("/etag.aci.asc", key.sign(t, v2))
	if id := fetch("--pull-policy=new", etagURL); id != imageID(v1) {
		t.Errorf("--pull-policy=new after a change: %s, want the stored %s", id, imageID(v1))
	}
	if id := fetch(etagURL); id != imageID(v2) {
		t.Errorf("update after a change: %s, want the new %s", id, imageID(v2))
	}
	if g := gets("/etag.aci"); len(g) != 1 || g[0] != `"v1"` {
		t.Errorf("update after a change: want one GET with If-None-Match \"v1\" answered 200, got %q", g)
	}
}

// TestFetchAuthConfig checks that auth.d credentials from --local-config
// reach the server: basic on one host, an oauth bearer token on another,
// over https only.
func TestFetchAuthConfig(t *testing.T) {
	t.Parallel()
	basic, oauth := newSite(t), newSite(t)
	c0 := testutil.New(t)
	key := newSigner(t, c0, "auth signer", trust.KeyOptions{})
	img := packImage(t, appImage(c0, "example.com/private", "1.0"))
	sig := key.sign(t, img)
	guard := func(s *site, want string) {
		for path, data := range map[string][]byte{"/private.aci": img, "/private.aci.asc": sig} {
			s.route(path, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != want {
					w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
					http.Error(w, "who are you?", http.StatusUnauthorized)
					return
				}
				w.Write(data)
			})
		}
	}
	guard(basic, "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:s3cret")))
	guard(oauth, "Bearer t0ken")
	hostOf := func(s *site) string { return strings.TrimPrefix(s.HTTPS, "https://") }

	for _, tc := range []struct {
		name  string
		s     *site
		creds string
	}{
		{"basic", basic, `"type":"basic","credentials":{"user":"alice","password":"s3cret"}`},
		{"oauth", oauth, `"type":"oauth","credentials":{"token":"t0ken"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.s.ctx(testutil.New(t))
			trustKey(c, "example.com", key)
			u := tc.s.HTTPS + "/private.aci"
			expectRefused(c, c.Rkt("fetch", u), u, "401", "auth.d")
			expectStoreEmpty(c)

			cfg := fmt.Sprintf(`{"rktKind":"auth","rktVersion":"v1","domains":[%q],%s}`, hostOf(tc.s), tc.creds)
			if err := writeFileAll(filepath.Join(c.LocalConfig, "auth.d", "test.json"), cfg); err != nil {
				t.Fatal(err)
			}
			tc.s.clearLog()
			if id := fetchedID(c, c.Rkt("fetch", u)); id != imageID(img) {
				t.Errorf("fetched %s, want %s", id, imageID(img))
			}
			for _, p := range []string{"/private.aci", "/private.aci.asc"} {
				qs := tc.s.requests(p)
				if len(qs) == 0 || qs[len(qs)-1].Header.Get("Authorization") == "" {
					t.Errorf("no credentials on %s: %+v", p, qs)
				}
			}
			// The same host over plain HTTP gets no credentials.
			tc.s.clearLog()
			pu := tc.s.Plain + "/private.aci"
			r := c.Rkt("--insecure-options=http,image", "fetch", "--pull-policy=update", pu)
			lastError(c, r, pu, "401")
			for _, q := range tc.s.requests("") {
				if q.Header.Get("Authorization") != "" {
					t.Errorf("credentials sent over plain HTTP to %s", q.Path)
				}
			}
		})
	}
}

// TestFetchResumesAndSlowDownloads: a download cut off mid-way resumes
// with a Range request and yields the right image; a slow one (a trickle
// that never stalls for long) completes.
func TestFetchResumesAndSlowDownloads(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	c := s.ctx(testutil.New(t))
	key := newSigner(t, c, "resume signer", trust.KeyOptions{})
	trustKey(c, "example.com", key)
	img := packImage(t, appImage(c, "example.com/big", "1.0").AddFile("data.bin", strings.Repeat("0123456789abcdef", 64<<10), 0o644))
	sig := key.sign(t, img)

	var cuts atomic.Int32
	full := truncatingHandler(img, len(img))
	half := truncatingHandler(img, len(img)/2)
	s.route("/flaky.aci", func(w http.ResponseWriter, r *http.Request) {
		if cuts.Add(1) == 1 {
			half(w, r)
			return
		}
		full(w, r)
	})
	s.file("/flaky.aci.asc", sig)
	if id := fetchedID(c, c.Rkt("fetch", s.HTTPS+"/flaky.aci")); id != imageID(img) {
		t.Errorf("resumed fetch: %s, want %s", id, imageID(img))
	}
	qs := s.requests("/flaky.aci")
	if len(qs) != 2 || qs[1].Header.Get("Range") != fmt.Sprintf("bytes=%d-", len(img)/2) {
		var ranges []string
		for _, q := range qs {
			ranges = append(ranges, q.Header.Get("Range"))
		}
		t.Errorf("want a full GET then one resuming at %d, got Range headers %q", len(img)/2, ranges)
	}

	// 1 MiB in 16 KiB pieces every 20ms: about 1.3 s, never idle for long.
	slow := packImage(t, appImage(c, "example.com/slow", "1.0").AddFile("data.bin", strings.Repeat("s", 1<<20), 0o644))
	s.route("/slow.aci", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(slow)))
		for i := 0; i < len(slow); i += 16 << 10 {
			if _, err := w.Write(slow[i:min(i+16<<10, len(slow))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	})
	s.file("/slow.aci.asc", key.sign(t, slow))
	r := c.Rkt("fetch", s.HTTPS+"/slow.aci")
	if id := fetchedID(c, r); id != imageID(slow) {
		t.Errorf("slow fetch: %s, want %s", id, imageID(slow))
	}
	if !strings.Contains(r.Stderr, "Downloading slow.aci") || !strings.Contains(r.Stderr, "Downloaded slow.aci") {
		t.Errorf("no progress lines for the slow download: %v", r)
	}
}

// TestFetchKilledMidway kills rkt (SIGKILL) while the server stalls half
// way through the image: nothing is stored, and the next fetch completes,
// resuming where the killed one stopped.
func TestFetchKilledMidway(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	c := s.ctx(testutil.New(t))
	key := newSigner(t, c, "kill signer", trust.KeyOptions{})
	trustKey(c, "example.com", key)
	img := packImage(t, appImage(c, "example.com/killed", "1.0").AddFile("data.bin", strings.Repeat("k", 2<<20), 0o644))
	cut := len(img) / 2
	var stall atomic.Bool
	stall.Store(true)
	full := truncatingHandler(img, len(img))
	s.route("/killed.aci", func(w http.ResponseWriter, r *http.Request) {
		if !stall.Load() {
			full(w, r)
			return
		}
		w.Header().Set("ETag", `"truncated"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		w.Write(img[:cut])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // stalls until the client goes away
	})
	s.file("/killed.aci.asc", key.sign(t, img))
	u := s.HTTPS + "/killed.aci"

	p := c.Start("fetch", u)
	partial := func() int64 {
		ms, _ := filepath.Glob(filepath.Join(c.Dir, "tmp", "fetch", "*.part"))
		var n int64
		for _, m := range ms {
			if fi, err := os.Stat(m); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	if !waitFor(20*time.Second, func() bool { return partial() == int64(cut) || p.Exited() }) {
		t.Fatalf("rkt did not receive the first half (%d bytes) of the image; partial file has %d", cut, partial())
	}
	if p.Exited() {
		t.Fatalf("rkt ended before it was killed: %v", p.Wait(time.Second))
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := p.Wait(10 * time.Second); r.Code != 128+int(syscall.SIGKILL) {
		t.Fatalf("want rkt killed by SIGKILL, got %v", r)
	}
	expectStoreEmpty(c)

	stall.Store(false)
	s.clearLog()
	if id := fetchedID(c, c.Rkt("fetch", u)); id != imageID(img) {
		t.Errorf("fetch after the kill: %s, want %s", id, imageID(img))
	}
	if qs := s.requests("/killed.aci"); len(qs) != 1 || qs[0].Header.Get("Range") != fmt.Sprintf("bytes=%d-", cut) {
		t.Errorf("the fetch after the kill did not resume at %d: %+v", cut, qs)
	}
	if n := partial(); n != 0 {
		t.Errorf("partial download left behind after the image was imported: %d bytes", n)
	}
}
