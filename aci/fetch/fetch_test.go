package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/discovery"
	"github.com/rktng/rkt/aci/trust"
	"github.com/rktng/rkt/common/config"
)

func TestParseRef(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "img")
	os.WriteFile(existing, []byte("x"), 0o644)
	cases := []struct {
		in   string
		kind Kind
		want string
	}{
		{"example.com/app:1.0", KindName, "example.com/app"},
		{"example.com/app", KindName, "example.com/app"},
		{"example.com/app,os=linux", KindName, "example.com/app"},
		{"/abs/path/app.aci", KindFile, "/abs/path/app.aci"},
		{"./rel.aci", KindFile, ""},
		{"app.aci", KindFile, ""},
		{existing, KindFile, existing},
		{"file:///x/y.aci", KindFile, "/x/y.aci"},
		{"https://example.com/app.aci", KindURL, "https://example.com/app.aci"},
		{"http://example.com/app.aci", KindURL, "http://example.com/app.aci"},
		{"docker://busybox", KindDocker, "busybox"},
		{"docker:busybox:1.36", KindDocker, "busybox:1.36"},
		{"sha512-0123abcd", KindID, ""},
		{"oci-archive:/x/app.tar", KindOCIArchive, "/x/app.tar"},
		{"oci-archive:/x/app.tar:quay.io/org/app:1.0", KindOCIArchive, "/x/app.tar"},
		{"oci:/x/layout:latest", KindOCIDir, "/x/layout"},
		// A directory is not an image: its name stays an appc name.
		{"imgdir", KindName, "imgdir"},
	}
	t.Chdir(dir)
	os.Mkdir("imgdir", 0o755)
	for _, c := range cases {
		r, err := ParseRef(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if r.Kind != c.kind {
			t.Errorf("%s: kind %v, want %v", c.in, r.Kind, c.kind)
		}
		var got string
		switch r.Kind {
		case KindName:
			got = r.App.Name.String()
		case KindFile, KindOCIArchive, KindOCIDir:
			got = r.Path
		case KindURL:
			got = r.URL.String()
		case KindDocker:
			got = r.Docker
		}
		if c.want != "" && got != c.want {
			t.Errorf("%s: %q, want %q", c.in, got, c.want)
		}
	}
	if r, _ := ParseRef("oci-archive:/x/app.tar:quay.io/org/app:1.0"); r == nil || r.OCIRef != "quay.io/org/app:1.0" {
		t.Errorf("oci-archive REF: %+v", r)
	}
	for _, bad := range []string{"", "ftp://x/y.aci", "docker://", "Bad_Name:1:2", "oci-archive:", "oci::latest"} {
		if _, err := ParseRef(bad); !errors.Is(err, ErrBadReference) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

// The main path: trust a prefix, fetch a signed image by name.
func TestFetchByName(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	aci := testImage(t, "example.com/app", map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"}, true)
	s.discovery("example.com/app")
	s.publish("example.com/app", "1.0", aci, sg.sign(t, aci))
	st := newMemStore()
	f, out := newFetcher(t, s, st, sg.ks)

	id, err := f.FetchImage(context.Background(), "example.com/app:1.0", "")
	if err != nil {
		t.Fatal(err)
	}
	if id != imageID(t, aci) {
		t.Errorf("id %s, want %s", id, imageID(t, aci))
	}
	info, _ := st.Info(id)
	if info.Latest {
		t.Error("fetched with a version but marked latest")
	}
	for _, want := range []string{"Downloading", "Downloaded", "Signed by Test Signer <signer@example.com>", "prefix example.com"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Pull policy new: the store answers, nothing is asked of the network.
	before := s.count("/app?ac-discovery=1")
	if id2, err := f.FetchImage(context.Background(), "example.com/app:1.0", ""); err != nil || id2 != id {
		t.Fatalf("second fetch: %v %s", err, id2)
	}
	if s.count("/app?ac-discovery=1") != before {
		t.Error("pull policy new went to the network")
	}
}

func TestFetchLatestWithoutVersion(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com/app")
	aci := testImage(t, "example.com/app", map[string]string{"version": "2.0", "os": "linux", "arch": "amd64"}, false)
	s.discovery("example.com/app")
	s.publish("example.com/app", "latest", aci, sg.sign(t, aci))
	st := newMemStore()
	f, _ := newFetcher(t, s, st, sg.ks)
	id, err := f.FetchImage(context.Background(), "example.com/app", "")
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(id); !info.Latest {
		t.Error("not marked latest")
	}
}

func TestFetchURLCaching(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	aci := testImage(t, "example.com/web", nil, true)
	s.put("/web.aci", aci)
	s.put("/web.aci.asc", sg.sign(t, aci))
	st := newMemStore()
	f, _ := newFetcher(t, s, st, sg.ks, func(o *Options) { o.PullPolicy = PullUpdate })

	id, err := f.FetchImage(context.Background(), "https://example.com/web.aci", "")
	if err != nil {
		t.Fatal(err)
	}
	served := s.bodies.Load()
	// Update revalidates with the ETag: 304, no body.
	if id2, err := f.FetchImage(context.Background(), "https://example.com/web.aci", ""); err != nil || id2 != id {
		t.Fatalf("revalidation: %v", err)
	}
	if s.count("/web.aci") != 2 || s.bodies.Load() != served {
		t.Errorf("requests %d, body bytes %d -> %d", s.count("/web.aci"), served, s.bodies.Load())
	}
	if h := s.headers["/web.aci"][1].Get("If-None-Match"); h == "" {
		t.Error("no If-None-Match on revalidation")
	}
	// A fresh max-age skips the network altogether.
	rem, _ := st.GetRemote("https://example.com/web.aci")
	rem.CacheMaxAge = 3600
	st.SetRemote(rem)
	f.FetchImage(context.Background(), "https://example.com/web.aci", "")
	if s.count("/web.aci") != 2 {
		t.Error("fresh max-age still fetched")
	}
	// Never: only the store.
	fn, _ := newFetcher(t, s, newMemStore(), sg.ks, func(o *Options) { o.PullPolicy = PullNever })
	if _, err := fn.FetchImage(context.Background(), "https://example.com/web.aci", ""); !errors.Is(err, ErrNotInStore) {
		t.Errorf("never: %v", err)
	}
}

func TestFetchFile(t *testing.T) {
	sg := newSigner(t, "example.com")
	aci := testImage(t, "example.com/local", nil, true)
	dir := t.TempDir()
	p := filepath.Join(dir, "local.aci")
	os.WriteFile(p, aci, 0o644)
	st := newMemStore()
	f, err := New(Options{Store: st, Keystore: sg.ks, DownloadDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.FetchImage(context.Background(), p, "")
	if !errors.Is(err, trust.ErrUnsigned) || !strings.Contains(err.Error(), p+".asc") {
		t.Fatalf("unsigned: %v", err)
	}
	sigPath := filepath.Join(dir, "elsewhere.asc")
	os.WriteFile(sigPath, sg.sign(t, aci), 0o644)
	if _, err := f.FetchImage(context.Background(), p, sigPath); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p+".asc", sg.sign(t, aci), 0o644)
	if _, err := f.FetchImage(context.Background(), "file://"+p, ""); err != nil {
		t.Fatal(err)
	}
	// --insecure-options=image needs no signature.
	other := filepath.Join(dir, "other.aci")
	os.WriteFile(other, testImage(t, "example.com/other", nil, false), 0o644)
	fi, _ := New(Options{Store: st, Insecure: InsecureOptions{Image: true}, DownloadDir: t.TempDir()})
	if _, err := fi.FetchImage(context.Background(), other, ""); err != nil {
		t.Fatal(err)
	}
}

// Every refused fetch leaves the store as it was.
func TestRefusals(t *testing.T) {
	type env struct {
		s  *site
		sg *signer
		ks *trust.Keystore
	}
	good := testImage(t, "example.com/app", map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"}, true)
	plain := testImage(t, "example.com/app", map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"}, false)
	cases := []struct {
		name  string
		setup func(t *testing.T, e *env)
		ref   string
		opts  func(*Options)
		is    error
		msg   []string
	}{
		{"wrong key", func(t *testing.T, e *env) {
			e.s.publish("example.com/app", "1.0", good, newSigner(t, "x.org").sign(t, good))
		}, "example.com/app:1.0", nil, trust.ErrUntrusted, []string{"example.com/app", "not among the keys trusted"}},
		{"tampered", func(t *testing.T, e *env) {
			bad := append([]byte{}, good...)
			bad[len(bad)/2] ^= 0xff
			e.s.publish("example.com/app", "1.0", bad, e.sg.sign(t, good))
		}, "example.com/app:1.0", nil, trust.ErrBadSignature, []string{"does not verify"}},
		{"untrusted prefix", func(t *testing.T, e *env) {
			e.ks = newSigner(t, "other.org").ks
			e.s.publish("example.com/app", "1.0", good, e.sg.sign(t, good))
		}, "example.com/app:1.0", nil, trust.ErrUntrusted, []string{`prefix "example.com/app"`, "rkt trust --prefix=example.com/app"}},
		{"expired key", func(t *testing.T, e *env) {
			k, _ := trust.NewSigningKey("Old", trust.KeyOptions{Created: time.Now().Add(-3 * time.Hour), Lifetime: time.Hour})
			dir := t.TempDir()
			pub, _ := trust.ArmorPublicKey(k)
			os.WriteFile(filepath.Join(dir, "k"), pub, 0o644)
			e.ks = trust.New("", t.TempDir())
			e.ks.Trust(context.Background(), trust.TrustOptions{Prefix: "example.com", Keys: []string{filepath.Join(dir, "k")}, SkipFingerprintReview: true})
			var sig strings.Builder
			trust.SignDetachedAt(&sig, k, strings.NewReader(string(good)), time.Now().Add(-150*time.Minute))
			e.s.publish("example.com/app", "1.0", good, []byte(sig.String()))
		}, "example.com/app:1.0", nil, trust.ErrKeyExpired, []string{"expired on"}},
		{"garbage signature", func(t *testing.T, e *env) {
			e.s.publish("example.com/app", "1.0", good, []byte("garbage\n"))
		}, "example.com/app:1.0", nil, trust.ErrMalformedSignature, nil},
		{"unsigned", func(t *testing.T, e *env) {
			e.s.publish("example.com/app", "1.0", good, nil)
		}, "example.com/app:1.0", nil, trust.ErrUnsigned, []string{"https://example.com/images/example.com/app-1.0-linux-amd64.aci.asc", "404"}},
		{"name mismatch", func(t *testing.T, e *env) {
			other := testImage(t, "example.com/evil", map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"}, true)
			e.s.publish("example.com/app", "1.0", other, e.sg.sign(t, other))
		}, "example.com/app:1.0", nil, ErrMismatch, []string{`names "example.com/evil", not "example.com/app"`}},
		{"label mismatch", func(t *testing.T, e *env) {
			other := testImage(t, "example.com/app", map[string]string{"version": "0.9", "os": "linux", "arch": "amd64"}, true)
			e.s.publish("example.com/app", "1.0", other, e.sg.sign(t, other))
		}, "example.com/app:1.0", nil, ErrMismatch, []string{"version=0.9, not version=1.0"}},
		{"bad discovery html", func(t *testing.T, e *env) {
			e.s.put("/app?ac-discovery=1", []byte("<html><head><meta name=ac-discovery content=onlyonefield></head>"))
			e.s.put("/?ac-discovery=1", []byte("\x00\x01 not html at all"))
		}, "example.com/app:1.0", nil, discovery.ErrNotFound, []string{"https://example.com/app?ac-discovery=1", "https://example.com?ac-discovery=1", "no <meta"}},
		{"image 404", func(t *testing.T, e *env) {
			e.s.put("/images/example.com/app-1.0-linux-amd64.aci.asc", e.sg.sign(t, good))
		}, "example.com/app:1.0", nil, ErrDownload, []string{"https://example.com/images/example.com/app-1.0-linux-amd64.aci", "404 Not Found"}},
		{"image 500", func(t *testing.T, e *env) {
			e.s.Mux.HandleFunc("/broken.aci", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", 500) })
		}, "https://example.com/broken.aci", func(o *Options) { o.Retries = 1 }, ErrDownload, []string{"500 Internal Server Error", "giving up after 1 retries"}},
		{"redirect loop", func(t *testing.T, e *env) {
			e.s.Mux.HandleFunc("/loop.aci", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop.aci", http.StatusFound) })
		}, "https://example.com/loop.aci", nil, errRedirectLoop, []string{"stopped after 10 redirects"}},
		{"plain http", func(t *testing.T, e *env) {
			e.s.put("/web.aci", good)
		}, "http://example.com/web.aci", nil, ErrInsecure, []string{"--insecure-options=http"}},
		{"https to http redirect", func(t *testing.T, e *env) {
			e.s.Mux.HandleFunc("/down.aci", func(w http.ResponseWriter, r *http.Request) {
				if r.TLS != nil {
					http.Redirect(w, r, "http://example.com/down.aci", http.StatusFound)
				}
			})
		}, "https://example.com/down.aci", nil, ErrInsecure, []string{"plain-HTTP"}},
		{"untrusted certificate", func(t *testing.T, e *env) {
			e.s.put("/web.aci", good)
		}, "https://example.com/web.aci", func(o *Options) { o.RootCAs = nil }, ErrDownload, []string{"certificate"}},
		{"truncated every time", func(t *testing.T, e *env) {
			e.s.Mux.HandleFunc("/trunc.aci", cutHandler(plain, 1000, 0))
			e.s.put("/trunc.aci.asc", e.sg.sign(t, plain))
		}, "https://example.com/trunc.aci", func(o *Options) { o.Retries = 2 }, ErrDownload, []string{"unexpected EOF", "giving up after 2 retries"}},
		{"stalled", func(t *testing.T, e *env) {
			e.s.Mux.HandleFunc("/slow.aci", cutHandler(plain, 1000, 5*time.Second))
			e.s.put("/slow.aci.asc", e.sg.sign(t, plain))
		}, "https://example.com/slow.aci", func(o *Options) { o.Retries = 1; o.StallTimeout = 200 * time.Millisecond }, ErrDownload, []string{"no data received for 200ms"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &env{s: newSite(t), sg: newSigner(t, "example.com")}
			e.ks = e.sg.ks
			e.s.discovery("example.com/app")
			c.setup(t, e)
			st := newMemStore()
			mods := []func(*Options){}
			if c.opts != nil {
				mods = append(mods, c.opts)
			}
			f, _ := newFetcher(t, e.s, st, e.ks, mods...)
			_, err := f.FetchImage(context.Background(), c.ref, "")
			if !errors.Is(err, c.is) {
				t.Fatalf("err = %v, want %v", err, c.is)
			}
			for _, m := range c.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error lacks %q: %v", m, err)
				}
			}
			if names := st.names(); len(names) != 0 {
				t.Errorf("store holds %v", names)
			}
		})
	}
}

// cutHandler serves data with ranges, but only chunk bytes per request,
// then stalls for stall (if any) and ends the connection early.
func cutHandler(data []byte, chunk int, stall time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		}
		w.Header().Set("ETag", `"cut"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
		if start > 0 {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
			w.WriteHeader(http.StatusPartialContent)
		}
		w.Write(data[start:min(start+chunk, len(data))])
		w.(http.Flusher).Flush()
		if stall > 0 {
			select {
			case <-r.Context().Done():
			case <-time.After(stall):
			}
		}
	}
}

// A download cut short is resumed with Range by the next fetch.
func TestResume(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	aci := testImage(t, "example.com/big", nil, false)
	s.put("/big.aci.asc", sg.sign(t, aci))
	etag := `"big-v1"`
	cut := true
	var ranges []string
	s.Mux.HandleFunc("/big.aci", func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		w.Header().Set("ETag", etag)
		if cut {
			w.Header().Set("Content-Length", "300000")
			w.Write(aci[:len(aci)/2])
			return // the client sees the connection end early
		}
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(aci)))
	})
	st := newMemStore()
	dl := t.TempDir()
	f, _ := newFetcher(t, s, st, sg.ks, func(o *Options) { o.Retries = -1; o.DownloadDir = dl })
	if _, err := f.FetchImage(context.Background(), "https://example.com/big.aci", ""); !errors.Is(err, ErrDownload) {
		t.Fatalf("cut download: %v", err)
	}
	if len(st.names()) != 0 {
		t.Fatal("store not clean after a cut download")
	}
	cut = false
	id, err := f.FetchImage(context.Background(), "https://example.com/big.aci", "")
	if err != nil {
		t.Fatal(err)
	}
	if id != imageID(t, aci) {
		t.Error("resumed image differs")
	}
	if len(ranges) != 2 || ranges[1] != "bytes="+itoa(len(aci)/2)+"-" {
		t.Errorf("ranges asked: %q", ranges)
	}
	if entries, _ := os.ReadDir(dl); len(entries) != 1 { // the lock file stays
		t.Errorf("download dir not cleaned: %v", entries)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Each fetch gets a third of the image before the connection drops; the
// third fetch completes it from the partial file of the first two.
func TestResumeAcrossFetches(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	aci := testImage(t, "example.com/big", nil, false)
	s.put("/big.aci.asc", sg.sign(t, aci))
	var ranges []string
	cut := cutHandler(aci, len(aci)/3+1, 0)
	s.Mux.HandleFunc("/big.aci", func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		cut(w, r)
	})
	st := newMemStore()
	dl := t.TempDir()
	f, _ := newFetcher(t, s, st, sg.ks, func(o *Options) { o.Retries = -1; o.DownloadDir = dl })
	var id string
	var err error
	for i := 0; i < 3; i++ {
		if id, err = f.FetchImage(context.Background(), "https://example.com/big.aci", ""); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if id != imageID(t, aci) || len(ranges) != 3 || ranges[2] != "bytes="+itoa(2*(len(aci)/3+1))+"-" {
		t.Errorf("id ok: %v, ranges %q", id == imageID(t, aci), ranges)
	}
}

// A connection that keeps dropping is resumed within one fetch.
func TestResumeWithinFetch(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	aci := testImage(t, "example.com/big", nil, false)
	s.put("/big.aci.asc", sg.sign(t, aci))
	s.Mux.HandleFunc("/big.aci", cutHandler(aci, len(aci)/4+1, 0))
	st := newMemStore()
	f, out := newFetcher(t, s, st, sg.ks, func(o *Options) { o.Retries = 5 })
	id, err := f.FetchImage(context.Background(), "https://example.com/big.aci", "")
	if err != nil {
		t.Fatal(err)
	}
	if id != imageID(t, aci) {
		t.Error("image differs")
	}
	if n := strings.Count(out.String(), "retrying"); n != 3 {
		t.Errorf("%d retries:\n%s", n, out)
	}
}

// A changed image is not spliced onto a stale partial download.
func TestResumeAfterChange(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	v1 := testImage(t, "example.com/big", map[string]string{"version": "1"}, false)
	v2 := testImage(t, "example.com/big", map[string]string{"version": "2"}, false)
	cur, etag, cut := v1, `"1"`, true
	s.Mux.HandleFunc("/big.aci.asc", func(w http.ResponseWriter, r *http.Request) { w.Write(sg.sign(t, cur)) })
	s.Mux.HandleFunc("/big.aci", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		if cut {
			w.Header().Set("Content-Length", "300000")
			w.Write(cur[:len(cur)/2])
			return
		}
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(cur)))
	})
	st := newMemStore()
	dl := t.TempDir()
	f, _ := newFetcher(t, s, st, sg.ks, func(o *Options) { o.Retries = -1; o.DownloadDir = dl })
	f.FetchImage(context.Background(), "https://example.com/big.aci", "")
	cur, etag, cut = v2, `"2"`, false
	id, err := f.FetchImage(context.Background(), "https://example.com/big.aci", "")
	if err != nil {
		t.Fatal(err)
	}
	if id != imageID(t, v2) {
		t.Error("got a spliced image")
	}
}

// A download killed in flight (context cancelled) leaves the store clean.
func TestCancelledDownload(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	aci := testImage(t, "example.com/big", nil, false)
	s.put("/big.aci.asc", sg.sign(t, aci))
	ctx, cancel := context.WithCancel(context.Background())
	s.Mux.HandleFunc("/big.aci", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"x"`)
		w.Header().Set("Content-Length", itoa(len(aci)))
		w.Write(aci[:len(aci)/3])
		w.(http.Flusher).Flush()
		cancel()
		<-r.Context().Done()
	})
	st := newMemStore()
	f, _ := newFetcher(t, s, st, sg.ks)
	_, err := f.FetchImage(ctx, "https://example.com/big.aci", "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if len(st.names()) != 0 {
		t.Fatal("store not clean")
	}
}

func TestDependencies(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	base := testImage(t, "example.com/base", map[string]string{"version": "1", "os": "linux", "arch": "amd64"}, true)
	lib := testImage(t, "example.com/lib", map[string]string{"version": "2", "os": "linux", "arch": "amd64"}, true, func(m *schema.ImageManifest) {
		m.Dependencies = types.Dependencies{{ImageName: "example.com/base", Labels: types.Labels{{Name: "version", Value: "1"}}}}
	})
	app := testImage(t, "example.com/app", map[string]string{"version": "3", "os": "linux", "arch": "amd64"}, true, func(m *schema.ImageManifest) {
		m.Dependencies = types.Dependencies{
			{ImageName: "example.com/lib", Labels: types.Labels{{Name: "version", Value: "2"}}},
			{ImageName: "example.com/base", Labels: types.Labels{{Name: "version", Value: "1"}}},
		}
	})
	for _, n := range []string{"app", "lib", "base"} {
		s.discovery("example.com/" + n)
	}
	s.publish("example.com/base", "1", base, sg.sign(t, base))
	s.publish("example.com/lib", "2", lib, sg.sign(t, lib))
	appPath := filepath.Join(t.TempDir(), "app.aci")
	os.WriteFile(appPath, app, 0o644)
	os.WriteFile(appPath+".asc", sg.sign(t, app), 0o644)
	st := newMemStore()
	f, _ := newFetcher(t, s, st, sg.ks)
	if _, err := f.FetchImage(context.Background(), appPath, ""); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(st.names(), ","); got != "example.com/app,example.com/base,example.com/lib" {
		t.Errorf("store has %s", got)
	}
	if n := s.count("/images/example.com/base-1-linux-amd64.aci"); n != 1 {
		t.Errorf("base downloaded %d times", n)
	}

	// A dependency pinned to another image ID is refused.
	pinned := testImage(t, "example.com/pinned", nil, false, func(m *schema.ImageManifest) {
		h, _ := types.NewHash("sha512-" + strings.Repeat("ab", 64))
		m.Dependencies = types.Dependencies{{ImageName: "example.com/lib", ImageID: h, Labels: types.Labels{{Name: "version", Value: "2"}}}}
	})
	p := filepath.Join(t.TempDir(), "pinned.aci")
	os.WriteFile(p, pinned, 0o644)
	os.WriteFile(p+".asc", sg.sign(t, pinned), 0o644)
	fu, _ := newFetcher(t, s, newMemStore(), sg.ks)
	if _, err := fu.FetchImage(context.Background(), p, ""); !errors.Is(err, ErrMismatch) {
		t.Errorf("pinned dependency: %v", err)
	}
}

func TestAuthAndTrustFromHTTPS(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com") // signs, but its keystore is not used
	aci := testImage(t, "example.com/private", map[string]string{"version": "1", "os": "linux", "arch": "amd64"}, true)
	s.discovery("example.com/private")
	p := s.publish("example.com/private", "1", aci, sg.sign(t, aci))
	pub, _ := trust.ArmorPublicKey(sg.key)
	s.put("/pubkeys.gpg", pub)
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer sesame" {
				http.Error(w, "who are you", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	s.Mux.HandleFunc(p, authed(s.serve))
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "auth.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "auth.d/a.json"), []byte(`{"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"oauth","credentials":{"token":"sesame"}}`), 0o644)
	cfg, err := config.Load("", dir, "")
	if err != nil {
		t.Fatal(err)
	}
	ks := trust.New("", t.TempDir())

	// Without credentials: a 401 that says where credentials go.
	f, out := newFetcher(t, s, newMemStore(), ks, func(o *Options) { o.TrustKeysFromHTTPS = true })
	if _, err := f.FetchImage(context.Background(), "example.com/private:1", ""); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "auth.d") {
		t.Fatalf("no credentials: %v", err)
	}
	// The key was discovered over HTTPS and trusted on the way.
	if !strings.Contains(out.String(), "Trusted key") {
		t.Errorf("output:\n%s", out)
	}
	// With them, and the key discovered over HTTPS and trusted.
	st := newMemStore()
	f, out = newFetcher(t, s, st, ks, func(o *Options) { o.Config = cfg; o.TrustKeysFromHTTPS = true })
	if _, err := f.FetchImage(context.Background(), "example.com/private:1", ""); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestInsecureOptions(t *testing.T) {
	s := newSite(t)
	aci := testImage(t, "example.com/web", nil, true)
	s.put("/web.aci", aci)
	st := newMemStore()
	f, out := newFetcher(t, s, st, nil, func(o *Options) {
		o.Insecure = InsecureOptions{Image: true, TLS: true, HTTP: true}
		o.RootCAs = nil
	})
	if _, err := f.FetchImage(context.Background(), "https://example.com/web.aci", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.FetchImage(context.Background(), "http://example.com/web.aci", ""); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"signature verification is disabled", "TLS certificate verification is disabled"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("no warning %q", w)
		}
	}
	// Verification on, but no keystore at all: refused.
	fk, _ := newFetcher(t, s, newMemStore(), nil)
	s.put("/web.aci.asc", []byte("x"))
	if _, err := fk.FetchImage(context.Background(), "https://example.com/web.aci", ""); !errors.Is(err, trust.ErrUntrusted) {
		t.Errorf("no keystore: %v", err)
	}
}

func TestVerifyImage(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	aci := testImage(t, "example.com/app", map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"}, true)
	s.discovery("example.com/app")
	s.publish("example.com/app", "1.0", aci, sg.sign(t, aci))
	p := filepath.Join(t.TempDir(), "app.aci")
	os.WriteFile(p, aci, 0o644)
	os.WriteFile(p+".asc", sg.sign(t, aci), 0o644)
	st := newMemStore()
	f, _ := newFetcher(t, s, st, sg.ks)
	for _, ref := range []string{p, "example.com/app:1.0", "https://example.com/images/example.com/app-1.0-linux-amd64.aci"} {
		v, err := f.VerifyImage(context.Background(), ref, "")
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if v.Name != "example.com/app" || v.Signer == nil || v.Signer.Prefix != "example.com" {
			t.Errorf("%s: %+v", ref, v)
		}
	}
	bad := append([]byte{}, aci...)
	bad[100] ^= 1
	os.WriteFile(p, bad, 0o644)
	if _, err := f.VerifyImage(context.Background(), p, ""); !errors.Is(err, trust.ErrBadSignature) {
		t.Errorf("tampered: %v", err)
	}
	if len(st.names()) != 0 {
		t.Errorf("verify stored %v", st.names())
	}
}

func TestProgressBar(t *testing.T) {
	var out strings.Builder
	p := &progress{w: &out, tty: true}
	b := p.Start("app.aci", 4<<20, 0)
	b.Add(1 << 20)
	b.lastDrawn = time.Time{}
	b.Add(1 << 20)
	b.Finish(nil)
	got := out.String()
	for _, want := range []string{"\rapp.aci [", "=====", "2.0 MiB / 4.0 MiB", "/s", "\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("bar %q lacks %q", got, want)
		}
	}
	out.Reset()
	p.tty = false
	b = p.Start("app.aci", -1, 1024)
	b.Add(2048)
	b.Finish(errors.New("boom"))
	if got := out.String(); !strings.Contains(got, "Downloading app.aci, resuming at 1.0 KiB\n") || !strings.Contains(got, "stopped after 3.0 KiB: boom") {
		t.Errorf("lines %q", got)
	}
}
