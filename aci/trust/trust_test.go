package trust

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/fetch/fetchtest"
)

func newKey(t *testing.T, name string, opts KeyOptions) *openpgp.Entity {
	t.Helper()
	e, err := NewSigningKey(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// place writes e's public key into dir/trustedkeys/<sub>/<fingerprint>.
func place(t *testing.T, dir, sub string, e *openpgp.Entity) string {
	t.Helper()
	p, err := writeKey(filepath.Join(dir, "trustedkeys", sub), e)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sign(t *testing.T, e *openpgp.Entity, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := SignDetached(&buf, e, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func id(s string) types.ACIdentifier { return *types.MustACIdentifier(s) }

func fps(kr *Keyring) []string {
	var out []string
	for _, k := range kr.Keys {
		out = append(out, k.Fingerprint)
	}
	return out
}

func TestKeyringLayout(t *testing.T) {
	sys, local := t.TempDir(), t.TempDir()
	ks := New(sys, local)
	root := newKey(t, "root", KeyOptions{})
	parent := newKey(t, "parent", KeyOptions{})
	child := newKey(t, "child", KeyOptions{})
	sibling := newKey(t, "sibling", KeyOptions{})
	masked := newKey(t, "masked", KeyOptions{})

	place(t, sys, "root.d", root)
	place(t, sys, "prefix.d/example.com", parent)
	place(t, local, "prefix.d/example.com/foo", child)
	place(t, local, "prefix.d/example.com/foobar", sibling)
	place(t, sys, "prefix.d/example.com/foo", masked)
	// An empty local file masks the system key of that name, there.
	mask := filepath.Join(local, "trustedkeys/prefix.d/example.com/foo", Fingerprint(masked))
	if err := os.WriteFile(mask, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	kr, err := ks.Keyring(id("example.com/foo/app"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(fps(kr), ",")
	for _, want := range []*openpgp.Entity{root, parent, child} {
		if !strings.Contains(got, Fingerprint(want)) {
			t.Errorf("keyring lacks %v", Identities(want))
		}
	}
	for _, not := range []*openpgp.Entity{sibling, masked} {
		if strings.Contains(got, Fingerprint(not)) {
			t.Errorf("keyring has %v", Identities(not))
		}
	}
	if k, _ := kr.Find(Fingerprint(child)); k.Prefix != "example.com/foo" {
		t.Errorf("child key prefix = %q", k.Prefix)
	}
	// The masked key is still trusted where it is not masked.
	place(t, sys, "root.d", masked)
	kr, _ = ks.Keyring(id("other.org/x"))
	if _, ok := kr.Find(Fingerprint(masked)); !ok {
		t.Error("root copy of masked key not trusted")
	}
}

func TestKeyFileMustBeNamedByFingerprint(t *testing.T) {
	local := t.TempDir()
	a, b := newKey(t, "a", KeyOptions{}), newKey(t, "b", KeyOptions{})
	p := place(t, local, "root.d", a)
	pub, _ := ArmorPublicKey(b)
	os.WriteFile(p, pub, 0o644)
	_, err := New("", local).Keyring(id("example.com/x"))
	if err == nil || !strings.Contains(err.Error(), "not the one in its name") {
		t.Fatalf("err = %v", err)
	}
}

func TestVerify(t *testing.T) {
	data := bytes.Repeat([]byte("image bytes "), 10000)
	now := time.Now()

	type setup struct {
		ks   *Keystore
		sig  []byte
		data []byte
	}
	good := func(t *testing.T, alg KeyAlgorithm) setup {
		local := t.TempDir()
		k := newKey(t, "Example Signer", KeyOptions{Algorithm: alg, Email: "signer@example.com"})
		place(t, local, "prefix.d/example.com", k)
		return setup{New("", local), sign(t, k, data), data}
	}
	cases := []struct {
		name    string
		setup   func(t *testing.T) setup
		want    error
		message []string
	}{
		{"ed25519", func(t *testing.T) setup { return good(t, Ed25519) }, nil, nil},
		{"rsa", func(t *testing.T) setup { return good(t, RSA) }, nil, nil},
		{"unsigned", func(t *testing.T) setup { s := good(t, Ed25519); s.sig = nil; return s }, ErrUnsigned, nil},
		{"tampered", func(t *testing.T) setup {
			s := good(t, Ed25519)
			s.data = append([]byte{}, data...)
			s.data[5000] ^= 1
			return s
		}, ErrBadSignature, []string{"fingerprint-of-signer", "modified"}},
		{"truncated", func(t *testing.T) setup { s := good(t, Ed25519); s.data = data[:len(data)-1]; return s }, ErrBadSignature, nil},
		{"wrong key", func(t *testing.T) setup {
			s := good(t, Ed25519)
			other := newKey(t, "Mallory", KeyOptions{})
			s.sig = sign(t, other, data)
			return s
		}, ErrUntrusted, []string{"example.com/app", "not among the keys trusted"}},
		{"untrusted prefix", func(t *testing.T) setup {
			local := t.TempDir()
			k := newKey(t, "Other", KeyOptions{})
			place(t, local, "prefix.d/other.org", k)
			return setup{New("", local), sign(t, k, data), data}
		}, ErrUntrusted, []string{`prefix "example.com/app"`, "rkt trust --prefix=example.com/app"}},
		{"expired", func(t *testing.T) setup {
			local := t.TempDir()
			k := newKey(t, "Old", KeyOptions{Created: now.Add(-3 * time.Hour), Lifetime: time.Hour})
			place(t, local, "root.d", k)
			var buf bytes.Buffer
			if err := SignDetachedAt(&buf, k, bytes.NewReader(data), now.Add(-150*time.Minute)); err != nil {
				t.Fatal(err)
			}
			return setup{New("", local), buf.Bytes(), data}
		}, ErrKeyExpired, []string{"expired on"}},
		{"revoked", func(t *testing.T) setup {
			local := t.TempDir()
			k := newKey(t, "Revoked", KeyOptions{})
			sig := sign(t, k, data)
			if err := Revoke(k); err != nil {
				t.Fatal(err)
			}
			place(t, local, "root.d", k)
			return setup{New("", local), sig, data}
		}, ErrKeyRevoked, nil},
		{"garbage", func(t *testing.T) setup {
			s := good(t, Ed25519)
			s.sig = []byte("this is not a signature\x00\x01")
			return s
		}, ErrMalformedSignature, nil},
		{"garbage armor", func(t *testing.T) setup {
			s := good(t, Ed25519)
			s.sig = []byte("-----BEGIN PGP SIGNATURE-----\n\nAAAA!!!!\n-----END PGP SIGNATURE-----\n")
			return s
		}, ErrMalformedSignature, nil},
		{"public key instead of signature", func(t *testing.T) setup {
			s := good(t, Ed25519)
			s.sig, _ = ArmorPublicKey(newKey(t, "x", KeyOptions{}))
			return s
		}, ErrMalformedSignature, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.setup(t)
			signer, err := s.ks.Verify(id("example.com/app"), bytes.NewReader(s.data), bytes.NewReader(s.sig))
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if signer.Prefix != "example.com" || len(signer.Identities) != 1 || !strings.Contains(signer.Identities[0], "signer@example.com") {
					t.Errorf("signer = %+v", signer)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("err is %T", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "example.com/app") {
				t.Errorf("message does not name the image: %s", msg)
			}
			if tc.want != ErrUnsigned && tc.want != ErrMalformedSignature && !strings.Contains(msg, FormatFingerprint(ve.Fingerprint)) {
				t.Errorf("message does not name the key: %s", msg)
			}
			for _, m := range tc.message {
				if m == "fingerprint-of-signer" {
					continue
				}
				if !strings.Contains(msg, m) {
					t.Errorf("message %q lacks %q", msg, m)
				}
			}
		})
	}
}

func TestBinarySignature(t *testing.T) {
	local := t.TempDir()
	k := newKey(t, "bin", KeyOptions{})
	place(t, local, "root.d", k)
	var buf bytes.Buffer
	if err := openpgp.DetachSign(&buf, k, bytes.NewReader([]byte("data")), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := New("", local).Verify(id("a.org/b"), strings.NewReader("data"), &buf); err != nil {
		t.Fatal(err)
	}
}

// A key unknown to the store is refused before the image is read.
func TestCheckFailsEarly(t *testing.T) {
	ks := New("", t.TempDir())
	c, err := ks.NewCheck(sign(t, newKey(t, "x", KeyOptions{}), []byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Precheck(id("example.com/app")); !errors.Is(err, ErrUntrusted) {
		t.Errorf("precheck: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrUntrusted) {
		t.Errorf("write: %v", err)
	}
	c.Abort()
}

// gpg makes the keys users really have: RSA and ed25519 from gpg 2.2+.
func TestGPGKeys(t *testing.T) {
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed: keys made in Go are tested in TestVerify")
	}
	for _, algo := range []string{"rsa3072", "ed25519"} {
		t.Run(algo, func(t *testing.T) {
			home := t.TempDir()
			gpg := func(stdin string, args ...string) []byte {
				cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--yes"}, args...)...)
				cmd.Stdin = strings.NewReader(stdin)
				out, err := cmd.Output()
				if err != nil {
					var ee *exec.ExitError
					errors.As(err, &ee)
					t.Fatalf("gpg %v: %v\n%s", args, err, ee.Stderr)
				}
				return out
			}
			gpg("", "--quick-gen-key", "--passphrase", "", "--pinentry-mode", "loopback", "Test Signer <t@example.com>", algo, "sign", "never")
			pub := gpg("", "--armor", "--export", "t@example.com")
			img := filepath.Join(home, "app.aci")
			os.WriteFile(img, bytes.Repeat([]byte{7}, 100000), 0o644)
			gpg("", "--armor", "--detach-sign", "--output", img+".asc", img)

			local := t.TempDir()
			ks := New("", local)
			if _, err := ks.Trust(context.Background(), TrustOptions{Prefix: "example.com", Keys: []string{writeTemp(t, pub)}, SkipFingerprintReview: true}); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(img)
			sig, _ := os.ReadFile(img + ".asc")
			signer, err := ks.Verify(id("example.com/app"), bytes.NewReader(data), bytes.NewReader(sig))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(signer.String(), "t@example.com") {
				t.Errorf("signer %s", signer)
			}
			data[0] ^= 1
			if _, err := ks.Verify(id("example.com/app"), bytes.NewReader(data), bytes.NewReader(sig)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("tampered: %v", err)
			}
		})
	}
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "key.asc")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrustFromFileWithReview(t *testing.T) {
	k := newKey(t, "Reviewed", KeyOptions{Email: "r@example.com"})
	pub, _ := ArmorPublicKey(k)
	keyFile := writeTemp(t, pub)

	for _, tc := range []struct {
		answer string
		stored bool
		err    string
	}{
		{"yes\n", true, ""},
		{"Y\n", true, ""},
		{"maybe\nno\n", false, "no key accepted"},
		{"\n", false, "no key accepted"},
		{"", false, "input closed"},
	} {
		local := t.TempDir()
		ks := New("", local)
		var out bytes.Buffer
		added, err := ks.Trust(context.Background(), TrustOptions{Prefix: "example.com/app", Keys: []string{keyFile}, Out: &out, In: strings.NewReader(tc.answer)})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("answer %q: err = %v", tc.answer, err)
			}
		} else if err != nil {
			t.Errorf("answer %q: %v", tc.answer, err)
		}
		want := filepath.Join(local, "trustedkeys/prefix.d/example.com/app", Fingerprint(k))
		_, statErr := os.Stat(want)
		if (statErr == nil) != tc.stored {
			t.Errorf("answer %q: stored = %v", tc.answer, statErr == nil)
		}
		if tc.stored && (len(added) != 1 || added[0].Path != want) {
			t.Errorf("added = %+v", added)
		}
		if !strings.Contains(out.String(), FormatFingerprint(Fingerprint(k))) {
			t.Errorf("output does not show the fingerprint:\n%s", out.String())
		}
	}
}

func TestTrustNeedsInputOrSkip(t *testing.T) {
	pub, _ := ArmorPublicKey(newKey(t, "x", KeyOptions{}))
	_, err := New("", t.TempDir()).Trust(context.Background(), TrustOptions{Prefix: "example.com", Keys: []string{writeTemp(t, pub)}})
	if err == nil || !strings.Contains(err.Error(), "--skip-fingerprint-review") {
		t.Fatalf("err = %v", err)
	}
	_, err = New("", t.TempDir()).Trust(context.Background(), TrustOptions{Keys: []string{"x"}})
	if err == nil || !strings.Contains(err.Error(), "--prefix") {
		t.Fatalf("err = %v", err)
	}
}

func TestTrustRoot(t *testing.T) {
	k := newKey(t, "root", KeyOptions{})
	pub, _ := ArmorPublicKey(k)
	local := t.TempDir()
	ks := New("", local)
	if _, err := ks.Trust(context.Background(), TrustOptions{Root: true, Keys: []string{writeTemp(t, pub)}, SkipFingerprintReview: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Verify(id("anything.org/x"), strings.NewReader("d"), bytes.NewReader(sign(t, k, []byte("d")))); err != nil {
		t.Fatal(err)
	}
}

func TestTrustByDiscoveryAndURL(t *testing.T) {
	srv := fetchtest.NewServer(t, "example.com")
	k := newKey(t, "Discovered", KeyOptions{Email: "d@example.com"})
	pub, _ := ArmorPublicKey(k)
	srv.Mux.HandleFunc("/pubkeys.gpg", func(w http.ResponseWriter, r *http.Request) { w.Write(pub) })
	srv.Mux.HandleFunc("/app", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, fetchtest.DiscoveryPage([2]string{"ac-discovery-pubkeys", "example.com https://example.com/pubkeys.gpg"}))
	})

	// Discovered over verified HTTPS, accepted with --trust-keys-from-https.
	local := t.TempDir()
	ks := New("", local)
	added, err := ks.Trust(context.Background(), TrustOptions{Prefix: "example.com/app", HTTP: srv.Client(), TrustKeysFromHTTPS: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 || added[0].Location != "https://example.com/pubkeys.gpg" || added[0].Fingerprint != Fingerprint(k) {
		t.Fatalf("added = %+v", added)
	}

	// A plain-HTTP key URL needs --insecure-allow-http.
	_, err = New("", t.TempDir()).Trust(context.Background(), TrustOptions{Prefix: "example.com", Keys: []string{"http://example.com/pubkeys.gpg"}, HTTP: srv.Client(), SkipFingerprintReview: true})
	if err == nil || !strings.Contains(err.Error(), "--insecure-allow-http") {
		t.Fatalf("http key: %v", err)
	}
	// A 404 names the URL.
	_, err = New("", t.TempDir()).Trust(context.Background(), TrustOptions{Prefix: "example.com", Keys: []string{"https://example.com/missing.gpg"}, HTTP: srv.Client(), SkipFingerprintReview: true})
	if err == nil || !strings.Contains(err.Error(), "https://example.com/missing.gpg") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404 key: %v", err)
	}
}
