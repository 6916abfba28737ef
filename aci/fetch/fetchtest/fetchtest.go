// Package fetchtest serves images, signatures, keys and discovery pages on
// 127.0.0.1 for tests of fetching, discovery and trust: an HTTPS server with
// a certificate from its own, freshly made CA, a plain HTTP twin, and a
// dialer that sends every host name to them, so tests use real names
// (example.com/app) without touching the network or /etc/hosts.
package fetchtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Server is an HTTPS server and a plain HTTP server on 127.0.0.1 sharing
// one handler (Mux).
type Server struct {
	TLS   *httptest.Server
	Plain *httptest.Server
	Mux   *http.ServeMux
	// Pool trusts the server's CA; CAPEM is that CA certificate.
	Pool  *x509.CertPool
	CAPEM []byte
}

// NewServer starts both servers with a certificate valid for hosts (and
// 127.0.0.1, localhost); they stop when the test ends.
func NewServer(t testing.TB, hosts ...string) *Server {
	t.Helper()
	caCert, caKey, caDER := newCA(t)
	leaf := newLeaf(t, caCert, caKey, append([]string{"localhost"}, hosts...))
	s := &Server{Mux: http.NewServeMux(), Pool: x509.NewCertPool()}
	s.Pool.AddCert(caCert)
	s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	s.TLS = httptest.NewUnstartedServer(s.Mux)
	s.TLS.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	// Clients that refuse the certificate are part of the tests.
	s.TLS.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.TLS.StartTLS()
	s.Plain = httptest.NewServer(s.Mux)
	t.Cleanup(func() {
		s.TLS.Close()
		s.Plain.Close()
	})
	return s
}

// DialContext connects to the TLS server for port 443 and to the plain one
// for any other port, whatever the host.
func (s *Server) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	target := s.Plain.Listener.Addr().String()
	if strings.HasSuffix(addr, ":443") {
		target = s.TLS.Listener.Addr().String()
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", target)
}

// Transport trusts the CA and dials through DialContext.
func (s *Server) Transport() *http.Transport {
	return &http.Transport{
		DialContext:     s.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: s.Pool},
	}
}

// Client is an http.Client using Transport.
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: s.Transport(), Timeout: 30 * time.Second}
}

// WriteCAFile writes the CA certificate as PEM (for SSL_CERT_FILE).
func (s *Server) WriteCAFile(t testing.TB) string {
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, s.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rkt test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, der
}

func newLeaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	for _, h := range hosts {
		if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// DiscoveryPage is an HTML page with one meta tag per (name, content) pair.
func DiscoveryPage(metas ...[2]string) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head>\n")
	for _, m := range metas {
		b.WriteString(`<meta name="` + m[0] + `" content="` + m[1] + `">` + "\n")
	}
	b.WriteString("</head><body></body></html>\n")
	return b.String()
}
