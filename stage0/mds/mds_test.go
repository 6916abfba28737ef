package mds

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

const (
	podA = "6a3b4d3c-8a6e-4b8e-9d0e-0c1f2a3b4c5d"
	podB = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
)

func imageID(c string) string { return "sha512-" + strings.Repeat(c, 128) }

// registration is a two-app pod whose apps' annotations override and
// extend their images' ones.
func registration(t *testing.T, uuid string) Registration {
	t.Helper()
	mustHash := func(s string) types.Hash {
		h, err := types.NewHash(s)
		if err != nil {
			t.Fatal(err)
		}
		return *h
	}
	pm := schema.BlankPodManifest()
	pm.Annotations = types.Annotations{{Name: "ip-address", Value: "10.1.2.3"}}
	pm.Apps = schema.AppList{
		{Name: "alpha", Image: schema.RuntimeImage{ID: mustHash(imageID("a"))},
			Annotations: types.Annotations{{Name: "shared", Value: "from-pod"}, {Name: "pod-only", Value: "p"}}},
		{Name: "beta", Image: schema.RuntimeImage{ID: mustHash(imageID("b"))}},
	}
	im := func(name string, ann types.Annotations) *schema.ImageManifest {
		m := schema.BlankImageManifest()
		m.Name = types.ACIdentifier("example.com/" + name)
		m.Annotations = ann
		return m
	}
	return Registration{
		UUID:     uuid,
		Manifest: pm,
		Apps: []AppImage{
			{Name: "alpha", Manifest: im("alpha", types.Annotations{{Name: "image-only", Value: "i"}, {Name: "shared", Value: "from-image"}}), ImageID: imageID("a")},
			{Name: "beta", Manifest: im("beta", nil)},
		},
	}
}

// service is a Server serving on 127.0.0.1 and a temp socket.
type service struct {
	s      *Server
	base   string // http://127.0.0.1:PORT
	socket string
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	logs   []string
}

func startService(t *testing.T) *service {
	t.Helper()
	sv := &service{socket: filepath.Join(t.TempDir(), "mds.sock"), done: make(chan error, 1)}
	sv.s = NewServer(Options{Logf: func(f string, a ...any) {
		sv.mu.Lock()
		sv.logs = append(sv.logs, fmt.Sprintf(f, a...))
		sv.mu.Unlock()
	}})
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := ListenRegistration(sv.socket)
	if err != nil {
		t.Fatal(err)
	}
	sv.base = "http://" + hl.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	sv.cancel = cancel
	go func() { sv.done <- sv.s.Serve(ctx, hl, rl) }()
	t.Cleanup(func() { sv.stop(t) })
	return sv
}

func (sv *service) stop(t *testing.T) {
	t.Helper()
	if sv.cancel == nil {
		return
	}
	sv.cancel()
	sv.cancel = nil
	select {
	case err := <-sv.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return after cancel")
	}
}

func (sv *service) log() string {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return strings.Join(sv.logs, "\n")
}

func (sv *service) register(t *testing.T, reg Registration) string {
	t.Helper()
	tok, err := Register(sv.socket, reg)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type answer struct {
	status int
	ctype  string
	body   string
}

// do sends a metadata request for token; form != nil makes it a POST.
func (sv *service) do(t *testing.T, token, path string, form url.Values, header bool) answer {
	t.Helper()
	u := sv.base + "/" + token + PathPrefix + path
	method, body := http.MethodGet, io.Reader(nil)
	if form != nil {
		method, body = http.MethodPost, strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if header {
		req.Header.Set(FlavorHeader, FlavorValue)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

func (sv *service) get(t *testing.T, token, path string) answer {
	t.Helper()
	return sv.do(t, token, path, nil, true)
}

func expect(t *testing.T, what string, a answer, status int, ctype string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: status %d, want %d (body %q)", what, a.status, status, a.body)
	}
	if ctype != "" && a.ctype != ctype {
		t.Errorf("%s: Content-Type %q, want %q", what, a.ctype, ctype)
	}
}

func TestEndpoints(t *testing.T) {
	sv := startService(t)
	reg := registration(t, podA)
	tok := sv.register(t, reg)
	if len(tok) < 32 || strings.Contains(tok, podA) {
		t.Fatalf("token %q: want >= 128 random bits, not the UUID", tok)
	}

	a := sv.get(t, tok, "/pod/manifest")
	expect(t, "pod/manifest", a, 200, "application/json")
	var pm schema.PodManifest
	if err := json.Unmarshal([]byte(a.body), &pm); err != nil {
		t.Fatalf("pod/manifest: %v", err)
	}
	if !reflect.DeepEqual(&pm, reg.Manifest) {
		t.Errorf("pod/manifest = %+v, want %+v", pm, reg.Manifest)
	}

	a = sv.get(t, tok, "/pod/uuid")
	expect(t, "pod/uuid", a, 200, "text/plain; charset=us-ascii")
	if a.body != podA {
		t.Errorf("pod/uuid = %q, want %q (no newline)", a.body, podA)
	}

	for _, p := range []string{"/pod/annotations", "/pod/annotations/"} {
		a = sv.get(t, tok, p)
		expect(t, p, a, 200, "application/json")
		var ann types.Annotations
		if err := json.Unmarshal([]byte(a.body), &ann); err != nil || !reflect.DeepEqual(ann, pm.Annotations) {
			t.Errorf("%s = %s (%v), want %v", p, a.body, err, pm.Annotations)
		}
	}
	a = sv.get(t, tok, "/pod/annotations/ip-address")
	expect(t, "pod annotation", a, 200, "text/plain; charset=us-ascii")
	if a.body != "10.1.2.3" {
		t.Errorf("pod annotation = %q", a.body)
	}
	expect(t, "missing pod annotation", sv.get(t, tok, "/pod/annotations/nope"), 404, "")

	a = sv.get(t, tok, "/apps/alpha/image/manifest")
	expect(t, "image/manifest", a, 200, "application/json")
	var im schema.ImageManifest
	if err := json.Unmarshal([]byte(a.body), &im); err != nil || !reflect.DeepEqual(&im, reg.Apps[0].Manifest) {
		t.Errorf("image/manifest = %s (%v)", a.body, err)
	}
	for app, want := range map[string]string{"alpha": imageID("a"), "beta": imageID("b")} {
		a = sv.get(t, tok, "/apps/"+app+"/image/id")
		expect(t, app+" image/id", a, 200, "text/plain; charset=us-ascii")
		if a.body != want {
			t.Errorf("%s image/id = %q, want %q", app, a.body, want)
		}
	}

	// The image's annotations in order, the pod manifest's overriding them
	// in place or following: what the ACE validator computes.
	want := types.Annotations{{Name: "image-only", Value: "i"}, {Name: "shared", Value: "from-pod"}, {Name: "pod-only", Value: "p"}}
	a = sv.get(t, tok, "/apps/alpha/annotations")
	expect(t, "app annotations", a, 200, "application/json")
	var ann types.Annotations
	if err := json.Unmarshal([]byte(a.body), &ann); err != nil || !reflect.DeepEqual(ann, want) {
		t.Errorf("app annotations = %s (%v), want %v", a.body, err, want)
	}
	a = sv.get(t, tok, "/apps/alpha/annotations/shared")
	if expect(t, "app annotation", a, 200, "text/plain; charset=us-ascii"); a.body != "from-pod" {
		t.Errorf("app annotation shared = %q", a.body)
	}
	a = sv.get(t, tok, "/apps/beta/annotations")
	expect(t, "beta annotations", a, 200, "application/json")
	if err := json.Unmarshal([]byte(a.body), &ann); err != nil || len(ann) != 0 {
		t.Errorf("beta annotations = %s (%v), want none", a.body, err)
	}
	expect(t, "unknown app", sv.get(t, tok, "/apps/gamma/image/id"), 404, "")
	expect(t, "unknown endpoint", sv.get(t, tok, "/pod/nothing"), 404, "")
	expect(t, "POST to a GET endpoint", sv.do(t, tok, "/pod/uuid", url.Values{}, true), 405, "")
	expect(t, "GET of sign", sv.get(t, tok, "/pod/hmac/sign"), 405, "")

	if l := sv.log(); strings.Contains(l, tok) || !strings.Contains(l, "/<token>/acMetadata/v1/pod/uuid") {
		t.Errorf("request log must show requests without their token:\n%s", l)
	}
}

func TestFlavorHeaderRequired(t *testing.T) {
	sv := startService(t)
	tok := sv.register(t, registration(t, podA))
	expect(t, "GET without header", sv.do(t, tok, "/pod/uuid", nil, false), 403, "")
	expect(t, "POST without header", sv.do(t, tok, "/pod/hmac/sign", url.Values{"content": {"x"}}, false), 403, "")
	req, _ := http.NewRequest("GET", sv.base+"/"+tok+PathPrefix+"/pod/uuid", nil)
	req.Header.Set(FlavorHeader, "Google")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("wrong flavor: status %d, want 403", resp.StatusCode)
	}
}

func TestUnknownToken(t *testing.T) {
	sv := startService(t)
	tok := sv.register(t, registration(t, podA))
	expect(t, "made-up token", sv.get(t, strings.Repeat("x", len(tok)), "/pod/uuid"), 401, "")
	expect(t, "made-up token, sign", sv.do(t, "nope", "/pod/hmac/sign", url.Values{"content": {"x"}}, true), 401, "")
	expect(t, "registered", sv.get(t, tok, "/pod/uuid"), 200, "")
	if err := Unregister(sv.socket, podA); err != nil {
		t.Fatal(err)
	}
	expect(t, "after unregister", sv.get(t, tok, "/pod/uuid"), 401, "")
	if err := Unregister(sv.socket, podA); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("second Unregister: %v, want ErrNotRegistered", err)
	}
}

func TestSignVerify(t *testing.T) {
	sv := startService(t)
	tokA := sv.register(t, registration(t, podA))
	tokB := sv.register(t, registration(t, podB))
	const content = "Old MacDonald Had A Farm"

	a := sv.do(t, tokA, "/pod/hmac/sign", url.Values{"content": {content}}, true)
	expect(t, "sign", a, 200, "text/plain; charset=us-ascii")
	sig := a.body
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) != 64 {
		t.Fatalf("signature %q: want base64 of an HMAC-SHA512 (%v)", sig, err)
	}
	// Another pod verifies A's signature.
	verify := func(uuid, content, sig string) answer {
		return sv.do(t, tokB, "/pod/hmac/verify", url.Values{"content": {content}, "uuid": {uuid}, "signature": {sig}}, true)
	}
	expect(t, "verify", verify(podA, content, sig), 200, "text/plain; charset=us-ascii")

	tampered := append([]byte(nil), raw...)
	tampered[10] ^= 1
	expect(t, "tampered signature", verify(podA, content, base64.StdEncoding.EncodeToString(tampered)), 403, "")
	expect(t, "other content", verify(podA, content+"!", sig), 403, "")
	expect(t, "other pod's uuid", verify(podB, content, sig), 403, "")
	expect(t, "malformed uuid", verify("not-a-uuid", content, sig), 400, "")
	expect(t, "signature not base64", verify(podA, content, "%%%"), 400, "")
	expect(t, "missing signature", verify(podA, content, ""), 400, "")
	expect(t, "sign without content", sv.do(t, tokA, "/pod/hmac/sign", url.Values{}, true), 400, "")

	// Same content signed by B differs: the signature binds the pod.
	b := sv.do(t, tokB, "/pod/hmac/sign", url.Values{"content": {content}}, true)
	if b.body == sig {
		t.Error("two pods got the same signature for the same content")
	}
	// A server with another key does not accept the signature.
	if bytes.Equal(NewServer(Options{}).signature(mustUUID(t, podA), content), raw) {
		t.Error("signatures do not depend on the server's key")
	}
}

func mustUUID(t *testing.T, s string) types.UUID {
	u, err := types.NewUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return *u
}

func TestRegistrationErrors(t *testing.T) {
	sv := startService(t)
	sv.register(t, registration(t, podA))
	if _, err := Register(sv.socket, registration(t, podA)); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate: %v", err)
	}
	cases := map[string]func(*Registration){
		`app "gamma" is not in the pod manifest`: func(r *Registration) { r.Apps[1].Name = "gamma" },
		"has no image registered":                func(r *Registration) { r.Apps = r.Apps[:1] },
		"differs from the pod manifest's":        func(r *Registration) { r.Apps[0].ImageID = imageID("c") },
		"no pod manifest":                        func(r *Registration) { r.Manifest = nil },
		"no image manifest":                      func(r *Registration) { r.Apps[0].Manifest = nil },
		"is not an address":                      func(r *Registration) { r.IP = "10.0.0" },
		"registered twice":                       func(r *Registration) { r.Apps[1] = r.Apps[0] },
		`pod UUID "nope"`:                        func(r *Registration) { r.UUID = "nope" },
		`image ID "bogus"`:                       func(r *Registration) { r.Apps[0].ImageID = "bogus" },
	}
	for want, change := range cases {
		reg := registration(t, podB)
		change(&reg)
		_, err := Register(sv.socket, reg)
		if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		} else if !strings.Contains(err.Error(), "registering pod") {
			t.Errorf("error does not name the operation: %v", err)
		}
	}
	if _, err := Register(filepath.Join(t.TempDir(), "none.sock"), registration(t, podB)); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no service: %v, want ErrNotRunning", err)
	}
	if err := Unregister(filepath.Join(t.TempDir(), "none.sock"), podB); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no service: %v, want ErrNotRunning", err)
	}
}

func TestRegistrationPathMustMatch(t *testing.T) {
	s := NewServer(Options{})
	body, _ := json.Marshal(registration(t, podA))
	rec := serveOne(s.RegistrationHandler(), "PUT", "/pods/"+podB, string(body))
	if rec.status != 400 || !strings.Contains(rec.body, podA) {
		t.Errorf("registration for another pod than the path's: %d %q", rec.status, rec.body)
	}
	rec = serveOne(s.RegistrationHandler(), "PUT", "/pods/"+podA, "{not json")
	if rec.status != 400 || strings.Contains(rec.body, "\n ") {
		t.Errorf("bad JSON: %d %q", rec.status, rec.body)
	}
}

// serveOne runs one request through h.
func serveOne(h http.Handler, method, path, body string) answer {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return answer{rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()}
}

func TestIPRestriction(t *testing.T) {
	sv := startService(t)
	reg := registration(t, podA)
	reg.IP = "127.0.0.2"
	tok := sv.register(t, reg)
	expect(t, "from another address", sv.get(t, tok, "/pod/uuid"), 403, "")
	reg = registration(t, podB)
	reg.IP = "127.0.0.1"
	tok = sv.register(t, reg)
	expect(t, "from the pod's address", sv.get(t, tok, "/pod/uuid"), 200, "")
}

func TestServeStops(t *testing.T) {
	sv := startService(t)
	sv.register(t, registration(t, podA))
	sv.stop(t)
	if _, err := os.Lstat(sv.socket); !os.IsNotExist(err) {
		t.Errorf("socket left after Serve returned: %v", err)
	}
	if _, err := http.Get(sv.base); err == nil {
		t.Error("metadata port still answers after Serve returned")
	}
}

func TestServeNeedsListeners(t *testing.T) {
	if err := NewServer(Options{}).Serve(context.Background(), nil, nil); err == nil {
		t.Error("Serve without listeners succeeded")
	}
}
