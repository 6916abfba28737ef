package mds

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"
)

// RegistrationHandler is the registration endpoint rkt talks to:
//
//	PUT /pods/<uuid>     body: Registration (JSON) → 200 {"token":"..."}
//	                     400 bad registration, 409 already registered
//	DELETE /pods/<uuid>  → 204, 404 when not registered
//
// It trusts its callers: serve it only on a socket that root alone can
// reach (Serve also checks the peer's credentials).
func (s *Server) RegistrationHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /pods/{uuid}", s.register)
	mux.HandleFunc("DELETE /pods/{uuid}", s.unregister)
	return s.logged("registration", false, mux)
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	u, err := types.NewUUID(r.PathValue("uuid"))
	if err != nil {
		http.Error(w, fmt.Sprintf("pod UUID %q: %v", r.PathValue("uuid"), err), http.StatusBadRequest)
		return
	}
	var reg Registration
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRegistrationBytes))
	if err := dec.Decode(&reg); err != nil {
		http.Error(w, fmt.Sprintf("pod %s: decoding registration: %v", u, oneLine(err)), http.StatusBadRequest)
		return
	}
	if ru, err := types.NewUUID(reg.UUID); err != nil || *ru != *u {
		http.Error(w, fmt.Sprintf("pod %s: registration is for pod %q", u, reg.UUID), http.StatusBadRequest)
		return
	}
	e, err := compile(reg)
	if err != nil {
		http.Error(w, oneLine(err), http.StatusBadRequest)
		return
	}
	token, err := s.pods.add(e)
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	s.logf("registered pod %s (%d pods)", u, s.pods.len())
	b, _ := json.Marshal(registered{Token: token})
	reply(w, contentJSON, b)
}

func (s *Server) unregister(w http.ResponseWriter, r *http.Request) {
	u, err := types.NewUUID(r.PathValue("uuid"))
	if err != nil {
		http.Error(w, fmt.Sprintf("pod UUID %q: %v", r.PathValue("uuid"), err), http.StatusBadRequest)
		return
	}
	if !s.pods.remove(*u) {
		http.Error(w, fmt.Sprintf("pod %s is not registered", u), http.StatusNotFound)
		return
	}
	s.logf("unregistered pod %s (%d pods)", u, s.pods.len())
	w.WriteHeader(http.StatusNoContent)
}

// oneLine flattens the multi-line errors appc's JSON decoding produces
// (they highlight the offending line), so they fit in an HTTP error line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// peerCredListener drops connections whose peer is neither root nor the
// server's own user, so that a socket left with loose permissions (or
// created before chmod) still lets no one else register pods.
type peerCredListener struct {
	net.Listener
	logf func(format string, args ...any)
}

func (l *peerCredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && (uid == 0 || uid == uint32(os.Geteuid())) {
			return c, nil
		}
		if err != nil {
			l.logf("registration: refused a connection: %v", err)
		} else {
			l.logf("registration: refused a connection from uid %d", uid)
		}
		c.Close()
	}
}

func peerUID(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("peer %s is not on a unix socket", c.RemoteAddr())
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return 0, fmt.Errorf("peer credentials: %w", cerr)
	}
	return cred.Uid, nil
}

// ListenRegistration listens on the unix socket path for registrations,
// root-only (mode 0600), creating its directory. A socket left behind by a
// service that died is replaced; a live one is an error, and so is a path
// that is not a socket (it is left alone). Closing the listener removes
// the socket.
func ListenRegistration(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listening for registrations on %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("listening for registrations on %s: exists and is not a socket", path)
		}
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("listening for registrations on %s: another metadata service answers there", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("listening for registrations on %s: probing the existing socket: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listening for registrations on %s: removing a stale socket: %w", path, err)
		}
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening for registrations on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("listening for registrations on %s: %w", path, err)
	}
	return l, nil
}
