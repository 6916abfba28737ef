package mds

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/appc/spec/schema/types"
)

// Content types appc prescribes for the answers.
const (
	contentJSON = "application/json"
	contentText = "text/plain; charset=us-ascii"
)

// Limits on request bodies: forms to sign are small; a registration
// carries a pod manifest and one image manifest per app.
const (
	maxFormBytes         = 1 << 20
	maxRegistrationBytes = 32 << 20
	shutdownGrace        = 5 * time.Second
)

// Options configure a Server.
type Options struct {
	// Logf, when set, receives one line per request and per refused
	// registration connection. nil: the server is silent.
	Logf func(format string, args ...any)
	// HMACKey signs pod identities. nil: 64 random bytes, so signatures
	// are valid only as long as this server lives (rkt's behaviour).
	HMACKey []byte
}

// Server is the metadata service: the pods registered with it and the
// HMAC key. Its handlers and Serve are safe for concurrent use.
type Server struct {
	pods *registry
	key  []byte
	logf func(format string, args ...any)
}

// NewServer returns a server with no pods registered.
func NewServer(opts Options) *Server {
	s := &Server{pods: newRegistry(), key: opts.HMACKey, logf: opts.Logf}
	if s.key == nil {
		s.key = make([]byte, sha512.Size)
		rand.Read(s.key) // never fails (crypto/rand)
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	return s
}

// Serve answers apps on httpListener and rkt on regListener until ctx is
// done, then shuts both down gracefully and returns nil; if either
// listener fails first, it stops the other and returns the error. It closes
// both listeners. Connections to regListener (a unix socket) are accepted
// only from root or from the server's own user, whatever the socket's
// permissions.
func (s *Server) Serve(ctx context.Context, httpListener, regListener net.Listener) error {
	if httpListener == nil || regListener == nil {
		return errors.New("metadata service: Serve needs both a metadata and a registration listener")
	}
	errLog := log.New(logWriter(s.logf), "", 0)
	servers := []struct {
		name string
		srv  *http.Server
		l    net.Listener
	}{
		{"metadata on " + httpListener.Addr().String(),
			&http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}, httpListener},
		{"registrations on " + regListener.Addr().String(),
			&http.Server{Handler: s.RegistrationHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog},
			&peerCredListener{Listener: regListener, logf: s.logf}},
	}
	errc := make(chan error, len(servers))
	for _, sv := range servers {
		go func() {
			err := sv.srv.Serve(sv.l)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			} else {
				err = fmt.Errorf("metadata service: serving %s: %w", sv.name, err)
			}
			errc <- err
		}()
	}
	var first error
	pending := len(servers)
	select {
	case <-ctx.Done():
	case first = <-errc:
		pending--
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for _, sv := range servers {
		sv.srv.Shutdown(sctx)
		sv.l.Close()
	}
	for ; pending > 0; pending-- {
		if err := <-errc; first == nil {
			first = err
		}
	}
	return first
}

// logWriter adapts logf to net/http's error log.
type logWriter func(format string, args ...any)

func (w logWriter) Write(p []byte) (int, error) {
	w("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Handler is the metadata endpoint apps talk to (paths /<token>/acMetadata/v1/...).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	p := "/{token}" + PathPrefix
	get := func(path string, h podHandler) {
		mux.Handle("GET "+p+path, s.withPod(h))
	}
	get("/pod/manifest", func(w http.ResponseWriter, _ *http.Request, e *podEntry) {
		reply(w, contentJSON, e.manifestJSON)
	})
	get("/pod/uuid", func(w http.ResponseWriter, _ *http.Request, e *podEntry) {
		reply(w, contentText, []byte(e.uuid.String()))
	})
	podAnnotations := func(w http.ResponseWriter, _ *http.Request, e *podEntry) {
		reply(w, contentJSON, e.annotsJSON)
	}
	// rkt's first versions used a trailing slash; both work.
	get("/pod/annotations", podAnnotations)
	get("/pod/annotations/{$}", podAnnotations)
	get("/pod/annotations/{name}", func(w http.ResponseWriter, r *http.Request, e *podEntry) {
		annotation(w, r, e.annotations)
	})
	get("/apps/{app}/image/manifest", s.app(func(w http.ResponseWriter, _ *http.Request, a *appEntry) {
		reply(w, contentJSON, a.manifestJSON)
	}))
	get("/apps/{app}/image/id", s.app(func(w http.ResponseWriter, _ *http.Request, a *appEntry) {
		reply(w, contentText, []byte(a.imageID))
	}))
	appAnnotations := s.app(func(w http.ResponseWriter, _ *http.Request, a *appEntry) {
		reply(w, contentJSON, a.annotsJSON)
	})
	get("/apps/{app}/annotations", appAnnotations)
	get("/apps/{app}/annotations/{$}", appAnnotations)
	get("/apps/{app}/annotations/{name}", s.app(func(w http.ResponseWriter, r *http.Request, a *appEntry) {
		annotation(w, r, a.annotations)
	}))
	mux.Handle("POST "+p+"/pod/hmac/sign", s.withPod(s.sign))
	mux.Handle("POST "+p+"/pod/hmac/verify", s.withPod(s.verify))
	return s.logged("metadata", true, requireFlavor(mux))
}

type podHandler func(http.ResponseWriter, *http.Request, *podEntry)

// withPod resolves the token to its pod: 401 for a token nobody holds, 403
// for a token used from another address than its pod's.
func (s *Server) withPod(h podHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := s.pods.lookup(r.PathValue("token"))
		if e == nil {
			http.Error(w, "unknown metadata token", http.StatusUnauthorized)
			return
		}
		if e.ip != nil && !remoteIP(r).Equal(e.ip) {
			http.Error(w, "metadata token used from another address than its pod's", http.StatusForbidden)
			return
		}
		h(w, r, e)
	})
}

func (s *Server) app(h func(http.ResponseWriter, *http.Request, *appEntry)) podHandler {
	return func(w http.ResponseWriter, r *http.Request, e *podEntry) {
		name := r.PathValue("app")
		a := e.apps[name]
		if a == nil {
			http.Error(w, fmt.Sprintf("pod %s has no app %q", e.uuid, name), http.StatusNotFound)
			return
		}
		h(w, r, a)
	}
}

func remoteIP(r *http.Request) net.IP {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return net.ParseIP(host)
}

// requireFlavor refuses (403) requests without the Metadata-Flavor header,
// as cloud metadata services do: a request an app is merely tricked into
// making (a redirect, a URL fetched on someone's behalf) does not carry it.
func requireFlavor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(FlavorHeader) != FlavorValue {
			http.Error(w, FlavorHeader+": "+FlavorValue+" header required", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func reply(w http.ResponseWriter, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func annotation(w http.ResponseWriter, r *http.Request, as types.Annotations) {
	name := r.PathValue("name")
	v, ok := as.Get(name)
	if !ok {
		http.Error(w, fmt.Sprintf("no annotation %q", name), http.StatusNotFound)
		return
	}
	reply(w, contentText, []byte(v))
}

// signature is HMAC-SHA512(key, uuid bytes || content), rkt's scheme: it
// binds the content to the pod that asked for it.
func (s *Server) signature(u types.UUID, content string) []byte {
	h := hmac.New(sha512.New, s.key)
	h.Write(u[:])
	h.Write([]byte(content))
	return h.Sum(nil)
}

func parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "reading form: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// sign answers the base64 signature of the form's content by the pod.
func (s *Server) sign(w http.ResponseWriter, r *http.Request, e *podEntry) {
	if !parseForm(w, r) {
		return
	}
	if _, ok := r.Form["content"]; !ok {
		http.Error(w, "form field content is missing", http.StatusBadRequest)
		return
	}
	sig := s.signature(e.uuid, r.Form.Get("content"))
	reply(w, contentText, []byte(base64.StdEncoding.EncodeToString(sig)))
}

// verify checks that signature is the pod uuid's signature of content: 200
// when it is, 403 when it is not. Any registered pod may verify any other
// pod's signatures, including pods that have since gone.
func (s *Server) verify(w http.ResponseWriter, r *http.Request, _ *podEntry) {
	if !parseForm(w, r) {
		return
	}
	u, err := types.NewUUID(r.Form.Get("uuid"))
	if err != nil {
		http.Error(w, "form field uuid: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, ok := r.Form["content"]; !ok {
		http.Error(w, "form field content is missing", http.StatusBadRequest)
		return
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(r.Form.Get("signature")))
	if err != nil || len(sig) == 0 {
		http.Error(w, "form field signature is missing or not base64", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", contentText)
	if !hmac.Equal(sig, s.signature(*u, r.Form.Get("content"))) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "signature does not match")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logged logs each request. Metadata paths start with the pod's token, a
// secret that logs must not keep: redact replaces it.
func (s *Server) logged(what string, redact bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		path := r.URL.Path
		if redact {
			path = redactToken(path)
		}
		s.logf("%s: %s %s %s: %d", what, r.RemoteAddr, r.Method, path, sw.status)
	})
}

func redactToken(path string) string {
	rest := strings.TrimPrefix(path, "/")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return "/<token>" + rest[i:]
	}
	return "/<token>"
}
