package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rktng/rkt/aci/fetch/fetchtest"
)

func page(metas ...[2]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ac-discovery") != "1" {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, fetchtest.DiscoveryPage(metas...))
	}
}

func TestDiscoverImageWalksUp(t *testing.T) {
	srv := fetchtest.NewServer(t, "example.com")
	// example.com/project/app has no page; example.com/project gives a 404
	// page; example.com answers.
	srv.Mux.Handle("/project", http.NotFoundHandler())
	srv.Mux.Handle("/{$}", page(
		[2]string{"ac-discovery", "example.com http://mirror.example.com/{name}-{version}-{os}-{arch}.{ext}"},
		[2]string{"ac-discovery", "example.com https://example.com/{os}/{arch}/{name}-{version}.{ext}"},
		[2]string{"ac-discovery", "other.org https://other.org/{name}.{ext}"},
		[2]string{"ac-discovery-pubkeys", "example.com https://example.com/pubkeys.gpg"},
	))
	app, err := ParseApp("example.com/project/app:1.0,os=linux,arch=amd64")
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{HTTP: srv.Client()}
	res, err := c.DiscoverImage(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	want := []Endpoint{
		{"https://example.com/linux/amd64/example.com/project/app-1.0.aci", "https://example.com/linux/amd64/example.com/project/app-1.0.aci.asc"},
		{"http://mirror.example.com/example.com/project/app-1.0-linux-amd64.aci", "http://mirror.example.com/example.com/project/app-1.0-linux-amd64.aci.asc"},
	}
	if fmt.Sprint(res.Endpoints) != fmt.Sprint(want) {
		t.Errorf("endpoints = %v", res.Endpoints)
	}
	if res.Page != "https://example.com?ac-discovery=1" || len(res.Attempts) != 2 {
		t.Errorf("page %s, attempts %v", res.Page, res.Attempts)
	}

	keys, err := c.DiscoverPublicKeys(context.Background(), "example.com/project")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.PublicKeys) != 1 || keys.PublicKeys[0] != "https://example.com/pubkeys.gpg" {
		t.Errorf("keys = %v", keys.PublicKeys)
	}
}

func TestDefaultVersionAndMissingLabel(t *testing.T) {
	srv := fetchtest.NewServer(t, "example.com")
	srv.Mux.Handle("/app", page(
		[2]string{"ac-discovery", "example.com https://example.com/{name}-{version}-{channel}.{ext}"},
	))
	c := &Client{HTTP: srv.Client()}
	app, _ := ParseApp("example.com/app,channel=beta")
	res, err := c.DiscoverImage(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	if res.Endpoints[0].ACI != "https://example.com/example.com/app-latest-beta.aci" {
		t.Errorf("aci = %s", res.Endpoints[0].ACI)
	}
	app, _ = ParseApp("example.com/app")
	_, err = c.DiscoverImage(context.Background(), app)
	if err == nil || !strings.Contains(err.Error(), "needs {channel}") {
		t.Errorf("err = %v", err)
	}
}

func TestFailureNamesEveryURL(t *testing.T) {
	srv := fetchtest.NewServer(t, "example.com")
	srv.Mux.HandleFunc("/a/b", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	srv.Mux.Handle("/a", page([2]string{"ac-discovery", "other.org https://other.org/{name}.{ext}"}))
	srv.Mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html><body>not discovery</body>") })
	c := &Client{HTTP: srv.Client()}
	app, _ := ParseApp("example.com/a/b")
	_, err := c.DiscoverImage(context.Background(), app)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"https://example.com/a/b?ac-discovery=1: 500 Internal Server Error",
		"https://example.com/a?ac-discovery=1: page's <meta name=\"ac-discovery\"> tags are for prefixes other.org",
		"https://example.com?ac-discovery=1: page has no <meta name=\"ac-discovery\"> tag",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

func TestRedirectLoopAndTLS(t *testing.T) {
	srv := fetchtest.NewServer(t, "example.com")
	srv.Mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop?ac-discovery=1", http.StatusFound)
	})
	app, _ := ParseApp("example.com/loop")
	_, err := (&Client{HTTP: srv.Client()}).DiscoverImage(context.Background(), app)
	if err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("loop: %v", err)
	}
	// A client that does not trust the test CA fails on the certificate,
	// and says so.
	tr := srv.Transport()
	tr.TLSClientConfig.RootCAs = nil
	_, err = (&Client{HTTP: &http.Client{Transport: tr}}).DiscoverImage(context.Background(), app)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted CA: %v", err)
	}
}

func TestHTTPFallbackAndAuth(t *testing.T) {
	srv := fetchtest.NewServer(t, "example.com")
	var gotAuth []string
	srv.Mux.HandleFunc("/app", func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, fmt.Sprintf("tls=%v:%s", r.TLS != nil, r.Header.Get("Authorization")))
		if r.TLS != nil {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, fetchtest.DiscoveryPage([2]string{"ac-discovery", "example.com http://example.com/{name}.{ext}"}))
	})
	app, _ := ParseApp("example.com/app")
	header := func(u *url.URL) http.Header { return http.Header{"Authorization": {"Bearer t"}} }
	c := &Client{HTTP: srv.Client(), Header: header}
	_, err := c.DiscoverImage(context.Background(), app)
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized (configure credentials for example.com in auth.d)") {
		t.Errorf("no fallback: %v", err)
	}
	c.InsecureHTTP = true
	res, err := c.DiscoverImage(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	if res.Endpoints[0].ACI != "http://example.com/example.com/app.aci" {
		t.Errorf("endpoints %v", res.Endpoints)
	}
	// Credentials go over HTTPS only.
	for _, a := range gotAuth {
		if a != "tls=true:Bearer t" && a != "tls=false:" {
			t.Errorf("request %s", a)
		}
	}
}
