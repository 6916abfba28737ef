package httpget

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	var gotAuth, gotUA string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotUA = r.Header.Get("Authorization"), r.Header.Get("User-Agent")
		switch r.URL.Path {
		case "/small":
			w.Write([]byte("hello"))
		case "/big":
			w.Write([]byte(strings.Repeat("x", 100)))
		default:
			http.NotFound(w, r)
		}
	})
	plain := httptest.NewServer(h)
	defer plain.Close()
	tls := httptest.NewTLSServer(h)
	defer tls.Close()
	creds := func(*url.URL) http.Header { return http.Header{"Authorization": {"Basic secret"}} }
	get := func(base, path string, o Options) (*Response, error) {
		u, _ := url.Parse(base + path)
		return Get(context.Background(), u, o)
	}

	r, err := get(tls.URL, "/small", Options{Client: tls.Client(), Header: creds, Limit: 10})
	if err != nil || r.Status != 200 || string(r.Body) != "hello" {
		t.Fatalf("https GET: %+v, %v", r, err)
	}
	if gotAuth != "Basic secret" || gotUA != UserAgent {
		t.Errorf("https GET sent Authorization %q, User-Agent %q", gotAuth, gotUA)
	}
	if _, err := get(plain.URL, "/small", Options{Header: creds, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if gotAuth != "" {
		t.Errorf("credentials went over plain HTTP: %q", gotAuth)
	}
	r, err = get(plain.URL, "/nothing", Options{Limit: 10})
	if err != nil || r.Status != http.StatusNotFound || r.Body != nil || r.StatusText != "404 Not Found" {
		t.Errorf("404: %+v, %v", r, err)
	}
	if _, err := get(plain.URL, "/big", Options{Limit: 10}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v, want ErrTooLarge", err)
	}
	r, err = get(plain.URL, "/big", Options{Limit: 10, Truncate: true})
	if err != nil || len(r.Body) != 10 {
		t.Errorf("truncated: %+v, %v", r, err)
	}
	if _, err := get("http://127.0.0.1:1", "/", Options{Limit: 10}); err == nil || strings.Contains(err.Error(), `Get "`) {
		t.Errorf("refused connection: %v, want an error without the url.Error prefix", err)
	}
}
