package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/aci/fetch/fetchtest"
	"github.com/rktng/rkt/aci/trust"
	"github.com/rktng/rkt/tests/testutil"
)

// appcOSArch is this machine's os and arch in appc's spelling, as rkt
// defaults the labels of a name.
func appcOSArch(t *testing.T) (string, string) {
	t.Helper()
	os, arch, err := types.ToAppcOSArch(runtime.GOOS, runtime.GOARCH, "")
	if err != nil {
		t.Fatal(err)
	}
	return os, arch
}

// imageTemplate is where the discovery page of a site on 443 says images
// are; imagePath renders it for one image.
const imageTemplate = "https://example.com/images/{name}-{version}-{os}-{arch}.{ext}"

func imagePath(t *testing.T, name, version string) string {
	os, arch := appcOSArch(t)
	return fmt.Sprintf("/images/%s-%s-%s-%s.aci", name, version, os, arch)
}

// discoveryPage announces images and keys for every name under example.com.
func discoveryPage() string {
	return fetchtest.DiscoveryPage(
		[2]string{"ac-discovery", "example.com " + imageTemplate},
		[2]string{"ac-discovery-pubkeys", "example.com https://example.com/pubkeys.gpg"},
	)
}

// publish serves im where discovery finds it, signed by key (unsigned when
// key is nil), and returns the image's bytes.
func (s *site) publish(t *testing.T, im *testutil.Image, key *signer) []byte {
	t.Helper()
	b := packImage(t, im)
	version, _ := im.Manifest.GetLabel("version")
	p := imagePath(t, im.Manifest.Name.String(), version)
	s.file(p, b, "ETag", fmt.Sprintf(`"%x"`, len(b)))
	if key != nil {
		s.file(p+".asc", key.sign(t, b))
	}
	return b
}

// lastError checks that r failed with exit 254 and that its last stderr
// line is rkt's error, mentioning each of want; commands that talk before
// failing (rkt trust shows the key) are checked this way.
func lastError(c *testutil.Ctx, r testutil.Result, want ...string) string {
	c.T.Helper()
	c.Expect(r, 254)
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !errorLine.MatchString(last) {
		c.T.Errorf("last line of stderr is not rkt's error: %v", r)
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(last), strings.ToLower(w)) {
			c.T.Errorf("error %q does not mention %q", last, w)
		}
	}
	return last
}

// keyFileIn is where rkt trust stores a key for prefix in a config dir.
func keyFileIn(configDir, prefix string, k *signer) string {
	return filepath.Join(configDir, "trustedkeys", "prefix.d", prefix, trust.Fingerprint(k.e))
}

// TestTrustPrefixThenRunByName is issue 4's main scenario: `rkt trust
// --prefix=example.com KEY && rkt run example.com/app:1.0` against an https
// site found by appc discovery, with the image's dependency discovered and
// verified too (signed by an RSA key, the app by an ed25519 one). Keys come
// from a file, from the prefix's ac-discovery-pubkeys, or are trusted on
// the fly with --trust-keys-from-https.
func TestTrustPrefixThenRunByName(t *testing.T) {
	s := newSite443(t)
	c0 := testutil.New(t)
	appKey := newSigner(t, c0, "app signer", trust.KeyOptions{})
	baseKey := newSigner(t, c0, "base signer", trust.KeyOptions{Algorithm: trust.RSA, RSABits: 2048})
	base := appImage(c0, "example.com/base", "1.0").AddFile("base.txt", "from-base", 0o644)
	app := appImage(c0, "example.com/app", "1.0", "--print-msg=app-ran", "--read-file=/base.txt")
	dependOn(app, "example.com/base", "1.0")
	setup := func() {
		s.reset()
		s.setDiscovery(discoveryPage())
		s.publish(t, base, baseKey)
		s.publish(t, app, appKey)
		s.file("/pubkeys.gpg", appKey.Pub)
	}
	trustBase := func(c *testutil.Ctx) {
		c.T.Helper()
		c.ExpectOK(c.Rkt("trust", "--prefix=example.com/base", "--skip-fingerprint-review", baseKey.PubFile))
	}
	// ran checks a verified run of the app and its dependency.
	ran := func(c *testutil.Ctx, r testutil.Result) {
		c.T.Helper()
		c.ExpectOK(r)
		if !strings.Contains(r.Stdout, "app-ran") || !strings.Contains(r.Stdout, "<<<from-base>>>") {
			c.T.Errorf("the app did not run on its dependency's files: %v", r)
		}
		if n := strings.Count(r.Stderr, "Signed by"); n != 2 {
			c.T.Errorf("want the app and its dependency reported as signed, got %d 'Signed by': %v", n, r)
		}
		for _, k := range []*signer{appKey, baseKey} {
			if !strings.Contains(r.Stderr, k.FP) {
				c.T.Errorf("run does not name signer %s: %v", k.FP, r)
			}
		}
		names := map[string]bool{}
		for _, im := range c.Images() {
			names[im.Name] = true
		}
		if !names["example.com/app:1.0"] || !names["example.com/base:1.0"] {
			c.T.Errorf("store after the run: %v, want example.com/app:1.0 and example.com/base:1.0", names)
		}
	}

	t.Run("key file", func(t *testing.T) {
		setup()
		c := s.ctx(testutil.New(t))
		r := c.ExpectOK(c.Rkt("trust", "--prefix=example.com", "--skip-fingerprint-review", appKey.PubFile))
		if _, err := os.Stat(keyFileIn(c.LocalConfig, "example.com", appKey)); err != nil {
			t.Errorf("rkt trust did not store the key in the local config: %v; %v", err, r)
		}
		trustBase(c)
		ran(c, c.Rkt(runArgs(c, "example.com/app:1.0")...))
		disc := 0
		for _, q := range s.requests("/app") {
			if strings.Contains(q.Query, "ac-discovery=1") {
				disc++
			}
		}
		if disc == 0 {
			t.Errorf("no discovery request for example.com/app: %+v", s.requests(""))
		}

		v := c.ExpectOK(c.Rkt("image", "verify", "example.com/app:1.0"))
		if !strings.Contains(v.Stdout, "signed by") || !strings.Contains(v.Stdout, appKey.FP) {
			t.Errorf("image verify does not name the signer: %v", v)
		}

		// A second run uses the store (pull policy new): no image download.
		s.clearLog()
		r = c.Rkt(runArgs(c, "example.com/app:1.0")...)
		c.ExpectOK(r)
		if qs := s.requests(imagePath(t, "example.com/app", "1.0")); len(qs) != 0 {
			t.Errorf("second run downloaded the image again: %+v", qs)
		}
	})

	t.Run("keys announced by discovery", func(t *testing.T) {
		setup()
		c := s.ctx(testutil.New(t))
		// No terminal to review the fingerprint on: refused, saying how.
		lastError(c, c.Rkt("trust", "--prefix=example.com/app"), "--skip-fingerprint-review")
		r := c.ExpectOK(c.Rkt("trust", "--prefix=example.com/app", "--skip-fingerprint-review"))
		if len(s.requests("/pubkeys.gpg")) == 0 {
			t.Errorf("rkt trust without a key file did not fetch the announced key: %v", r)
		}
		if _, err := os.Stat(keyFileIn(c.LocalConfig, "example.com/app", appKey)); err != nil {
			t.Errorf("announced key not stored for example.com/app: %v; %v", err, r)
		}
		trustBase(c)
		ran(c, c.Rkt(runArgs(c, "example.com/app:1.0")...))
	})

	t.Run("trust-keys-from-https", func(t *testing.T) {
		setup()
		c := s.ctx(testutil.New(t))
		trustBase(c)
		r := c.Rkt(runArgs(c, "example.com/app:1.0")...)
		expectRefused(c, r, appKey.FP, "example.com/app", "rkt trust")
		expectStoreEmpty(c)
		ran(c, c.Rkt(append([]string{"--trust-keys-from-https"}, runArgs(c, "example.com/app:1.0")...)...))
		if _, err := os.Stat(keyFileIn(c.LocalConfig, "example.com/app", appKey)); err != nil {
			t.Errorf("--trust-keys-from-https did not store the announced key for example.com/app: %v", err)
		}
	})
}

// TestVerificationRefusals fetches appc names whose images must be
// refused: each ends with exit 254, one error line naming the image, the
// key's fingerprint and the prefix where they apply, and an empty store.
func TestVerificationRefusals(t *testing.T) {
	s := newSite443(t)
	c0 := testutil.New(t)
	good := newSigner(t, c0, "good signer", trust.KeyOptions{})
	stranger := newSigner(t, c0, "stranger", trust.KeyOptions{})
	created := time.Now().Add(-48 * time.Hour)
	expiredE, err := trust.NewSigningKey("expired signer", trust.KeyOptions{Created: created, Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	expired := signerOf(t, c0, expiredE)
	revokedE, err := trust.NewSigningKey("revoked signer", trust.KeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	revokedSigner := signerOf(t, c0, revokedE) // signs before the revocation

	app := appImage(c0, "example.com/app", "1.0").AddFile("data.txt", "original", 0o644)
	path := imagePath(t, "example.com/app", "1.0")
	appURL := "https://example.com" + path

	cases := []struct {
		name  string
		setup func(t *testing.T, c *testutil.Ctx)
		want  []string
	}{
		{"wrong key", func(t *testing.T, c *testutil.Ctx) {
			trustKey(c, "example.com", good)
			s.publish(t, app, stranger)
		}, []string{stranger.FP, "example.com/app", "not among the keys trusted", good.FP}},
		{"tampered image", func(t *testing.T, c *testutil.Ctx) {
			trustKey(c, "example.com", good)
			orig := packImage(t, app)
			evil := appImage(c, "example.com/app", "1.0").AddFile("data.txt", "tampered", 0o644)
			s.file(path, packImage(t, evil))
			s.file(path+".asc", good.sign(t, orig))
		}, []string{"does not match", good.FP, "example.com/app"}},
		{"untrusted prefix", func(t *testing.T, c *testutil.Ctx) {
			trustKey(c, "example.org", good)
			s.publish(t, app, good)
		}, []string{good.FP, `prefix "example.com/app"`, "rkt trust --prefix=example.com/app"}},
		{"expired key", func(t *testing.T, c *testutil.Ctx) {
			trustKey(c, "example.com", expired)
			b := packImage(t, app)
			var sig bytes.Buffer
			if err := trust.SignDetachedAt(&sig, expiredE, bytes.NewReader(b), created.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			s.file(path, b)
			s.file(path+".asc", sig.Bytes())
		}, []string{"expired", expired.FP, "example.com/app"}},
		{"revoked key", func(t *testing.T, c *testutil.Ctx) {
			b := packImage(t, app)
			s.file(path, b)
			s.file(path+".asc", revokedSigner.sign(t, b))
			// The administrator trusts the key as its owner now publishes
			// it: with its revocation.
			revoked := *revokedE
			if err := trust.Revoke(&revoked); err != nil {
				t.Fatal(err)
			}
			trustKey(c, "example.com", signerOf(t, c, &revoked))
		}, []string{"revoked", revokedSigner.FP, "example.com/app"}},
		{"garbage signature", func(t *testing.T, c *testutil.Ctx) {
			trustKey(c, "example.com", good)
			s.file(path, packImage(t, app))
			s.file(path+".asc", []byte("-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n-----END PGP SIGNATURE-----\n"))
		}, []string{"malformed signature", "example.com/app"}},
		{"unsigned", func(t *testing.T, c *testutil.Ctx) {
			trustKey(c, "example.com", good)
			s.publish(t, app, nil)
		}, []string{"not signed", appURL + ".asc", "--insecure-options=image"}},
		{"name differs", func(t *testing.T, c *testutil.Ctx) {
			trustKey(c, "example.com", good)
			other := appImage(c, "example.com/other", "1.0")
			b := packImage(t, other)
			s.file(path, b)
			s.file(path+".asc", good.sign(t, b))
		}, []string{`"example.com/other"`, `not "example.com/app"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.reset()
			s.setDiscovery(discoveryPage())
			c := s.ctx(testutil.New(t))
			tc.setup(t, c)
			r := c.Rkt("fetch", "example.com/app:1.0")
			t.Logf("refused: %s", expectRefused(c, r, tc.want...))
			expectStoreEmpty(c)
		})
	}

	// rkt run refuses the same way, and --insecure-options=image waives
	// the check (with a warning).
	t.Run("run, then waived", func(t *testing.T) {
		s.reset()
		s.setDiscovery(discoveryPage())
		c := s.ctx(testutil.New(t))
		trustKey(c, "example.com", good)
		s.publish(t, app, stranger)
		expectRefused(c, c.Rkt(runArgs(c, "example.com/app:1.0")...), stranger.FP, "example.com/app")
		expectStoreEmpty(c)
		r := c.ExpectOK(c.Rkt(append([]string{"--insecure-options=image"}, runArgs(c, "example.com/app:1.0")...)...))
		if !strings.Contains(r.Stderr, "verification is disabled") {
			t.Errorf("no warning when verification is waived: %v", r)
		}
	})
}

// trustKey trusts k for prefix with rkt trust.
func trustKey(c *testutil.Ctx, prefix string, k *signer) {
	c.T.Helper()
	c.ExpectOK(c.Rkt("trust", "--prefix="+prefix, "--skip-fingerprint-review", k.PubFile))
}

// expectStoreEmpty fails unless rkt image list is empty.
func expectStoreEmpty(c *testutil.Ctx) {
	c.T.Helper()
	if imgs := c.Images(); len(imgs) != 0 {
		c.T.Errorf("store not clean: %+v", imgs)
	}
}

// TestReadmeSampleIsSigned builds the README's sample the way build.sh does
// (dist/sample-image, signed with acisign by a key made for it, the key
// trusted in a config directory next to it) and checks that
// `rkt --local-config=<that> run hello.aci` verifies it and runs it.
func TestReadmeSampleIsSigned(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	testutil.RequireGo(t)
	root := c.A.Root
	bin := c.Path("bin")
	for out, pkg := range map[string]string{"mkaci": "./aci/acibuild/mkaci", "acisign": "./aci/trust/acisign"} {
		goBuildIn(t, root, filepath.Join(bin, out), pkg, "")
	}
	rootfs := c.Path("sample/rootfs")
	goBuildIn(t, root, filepath.Join(rootfs, "hello"), "./dist/sample-image", "CGO_ENABLED=0")
	m, err := os.ReadFile(filepath.Join(root, "dist/sample-image/manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, arch := appcOSArch(t)
	manifest := c.WriteBytes("sample/manifest.json", bytes.Replace(m, []byte(`"amd64"`), []byte(`"`+arch+`"`), 1))
	aci := c.Path("images/hello.aci")
	cfg := c.Path("sample-config")
	sh := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, name), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	os.MkdirAll(filepath.Dir(aci), 0o755)
	sh("mkaci", "--manifest", manifest, "--rootfs", rootfs, aci)
	fp := strings.TrimSpace(sh("acisign", "--gen-key", c.Path("sample-key"), "--name", "rkt sample image signer"))
	sh("acisign", "--key", c.Path("sample-key/privkey.gpg"), "--sign", aci)
	sh("acisign", "--trust", c.Path("sample-key/pubkey.gpg"), "--prefix", "example.com/hello", "--config", cfg)

	r := c.ExpectOK(c.Rkt("--local-config="+cfg, "run", "--stage1-path="+c.Stage1().ACI, aci))
	if !strings.Contains(r.Stdout, "Hello from rkt!") {
		t.Errorf("the sample did not greet: %v", r)
	}
	if !strings.Contains(r.Stderr, "Signed by") || !strings.Contains(r.Stderr, "rkt sample image signer") {
		t.Errorf("the sample run does not say who signed it: %v", r)
	}
	if fp != "" && !strings.Contains(strings.ReplaceAll(r.Stderr, " ", ""), strings.ToUpper(strings.ReplaceAll(fp, " ", ""))) {
		t.Errorf("the sample run does not name the key %s: %v", fp, r)
	}
	// Without that config directory the same image is refused.
	other := testutil.New(t)
	expectRefused(other, other.Rkt("run", "--stage1-path="+other.Stage1().ACI, aci), "signing key is not trusted")
	expectStoreEmpty(other)
}

func goBuildIn(t *testing.T, root, out, pkg, env string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = os.Environ()
	if env != "" {
		cmd.Env = append(cmd.Env, env)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}
