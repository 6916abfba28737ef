package fetch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/aci/fetch/fetchtest"
	"github.com/rktng/rkt/aci/trust"
)

// suiteEnv is what the sources of the shared suite are served from: a
// web site and a docker registry on 127.0.0.1, and a key trusted for
// example.com.
type suiteEnv struct {
	site *site
	reg  *fetchtest.Registry
	sg   *signer
	dir  string
}

// sourceCase is one scheme in the suite: arguments naming a good image, an
// unsigned one and a damaged one, and what the good one must be.
type sourceCase struct {
	name string
	// insecure: the scheme cannot verify the good image, which then
	// needs --insecure-options=image.
	insecure bool
	// setup publishes the images and returns the three arguments.
	setup func(t *testing.T, e *suiteEnv) (good, unsigned, corrupt string)
	// wantName and wantLabels are what the good image is.
	wantName   string
	wantLabels map[string]string
	// downloads counts transfers of the good image's content (nil: local).
	downloads func(e *suiteEnv) int
	// corruptErr is in the error a damaged image gives.
	corruptErr string
}

func suiteACI(t *testing.T, name string) []byte {
	return testImage(t, name, map[string]string{"version": "1", "os": "linux", "arch": "amd64"}, true)
}

func tampered(b []byte) []byte {
	c := append([]byte{}, b...)
	c[len(c)/2] ^= 1
	return c
}

var sourceCases = []sourceCase{{
	name: "file",
	setup: func(t *testing.T, e *suiteEnv) (string, string, string) {
		aci := suiteACI(t, "example.com/suite-file")
		write := func(name string, data, sig []byte) string {
			p := filepath.Join(e.dir, name)
			os.WriteFile(p, data, 0o644)
			if sig != nil {
				os.WriteFile(p+".asc", sig, 0o644)
			}
			return p
		}
		return write("good.aci", aci, e.sg.sign(t, aci)), write("unsigned.aci", aci, nil), write("bad.aci", tampered(aci), e.sg.sign(t, aci))
	},
	wantName:   "example.com/suite-file",
	wantLabels: map[string]string{"version": "1"},
	corruptErr: "signature",
}, {
	name: "https",
	setup: func(t *testing.T, e *suiteEnv) (string, string, string) {
		aci := suiteACI(t, "example.com/suite-https")
		e.site.put("/suite/good.aci", aci)
		e.site.put("/suite/good.aci.asc", e.sg.sign(t, aci))
		e.site.put("/suite/unsigned.aci", aci)
		e.site.put("/suite/bad.aci", tampered(aci))
		e.site.put("/suite/bad.aci.asc", e.sg.sign(t, aci))
		return "https://example.com/suite/good.aci", "https://example.com/suite/unsigned.aci", "https://example.com/suite/bad.aci"
	},
	wantName:   "example.com/suite-https",
	wantLabels: map[string]string{"version": "1"},
	downloads:  func(e *suiteEnv) int { return e.site.count("/suite/good.aci") },
	corruptErr: "signature",
}, {
	name: "appc",
	setup: func(t *testing.T, e *suiteEnv) (string, string, string) {
		for _, n := range []string{"good", "unsigned", "bad"} {
			e.site.discovery("example.com/suite-" + n)
		}
		aci := suiteACI(t, "example.com/suite-good")
		e.site.publish("example.com/suite-good", "1", aci, e.sg.sign(t, aci))
		un := suiteACI(t, "example.com/suite-unsigned")
		e.site.publish("example.com/suite-unsigned", "1", un, nil)
		bad := suiteACI(t, "example.com/suite-bad")
		e.site.publish("example.com/suite-bad", "1", tampered(bad), e.sg.sign(t, bad))
		return "example.com/suite-good:1", "example.com/suite-unsigned:1", "example.com/suite-bad:1"
	},
	wantName:   "example.com/suite-good",
	wantLabels: map[string]string{"version": "1", "os": "linux", "arch": "amd64"},
	downloads:  func(e *suiteEnv) int { return e.site.count("/images/example.com/suite-good-1-linux-amd64.aci") },
	corruptErr: "signature",
}, {
	name: "docker",
	setup: func(t *testing.T, e *suiteEnv) (string, string, string) {
		img := appImage(t, amd64, "suite")
		d := fetchtest.Push(t, "example.com/library/suite:1.0", e.site.Transport(), "", "", img)
		// A layer that is not a tar: the registry serves what its
		// digest says, the conversion fails.
		bad := fetchtest.Image(t, v1.Config{}, amd64, fetchtest.RawLayer(t, []byte("not a tar archive at all")))
		bd := fetchtest.Push(t, "example.com/library/broken:1.0", e.site.Transport(), "", "", bad)
		return "docker://example.com/library/suite@" + d.String(), "docker://example.com/library/suite:1.0", "docker://example.com/library/broken@" + bd.String()
	},
	wantName:   "example.com/library/suite",
	wantLabels: map[string]string{"os": "linux", "arch": "amd64"},
	downloads:  func(e *suiteEnv) int { return e.reg.BlobGets() },
	corruptErr: "docker image",
}, {
	name:     "oci-archive",
	insecure: true,
	setup: func(t *testing.T, e *suiteEnv) (string, string, string) {
		good := ociLayoutDir(t, appImage(t, amd64, "oci"), "1.0")
		bad := ociLayoutDir(t, appImage(t, amd64, "oci-bad"), "1.0")
		damageLayer(t, bad)
		g, b := filepath.Join(e.dir, "suite-app.tar"), filepath.Join(e.dir, "broken.tar")
		tarDir(t, good, g)
		tarDir(t, bad, b)
		return "oci-archive:" + g, "oci-archive:" + g, "oci-archive:" + b
	},
	wantName:   "localhost/suite-app",
	wantLabels: map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"},
	corruptErr: "digest",
}, {
	name:     "oci",
	insecure: true,
	setup: func(t *testing.T, e *suiteEnv) (string, string, string) {
		good := ociLayoutDir(t, appImage(t, amd64, "oci"), "quay.io/org/app:2.0")
		bad := ociLayoutDir(t, appImage(t, amd64, "oci-bad"), "")
		damageLayer(t, bad)
		return "oci:" + good, "oci:" + good, "oci:" + bad
	},
	wantName:   "quay.io/org/app",
	wantLabels: map[string]string{"version": "2.0", "os": "linux", "arch": "amd64"},
	corruptErr: "digest",
}}

// TestSources is the suite every fetch source passes: the image is fetched
// into the store with its name and labels; a second fetch is served from
// the store; an unsigned image is refused unless the scheme cannot sign at
// all; a damaged one gives a one-line error and leaves nothing stored.
func TestSources(t *testing.T) {
	for _, c := range sourceCases {
		t.Run(c.name, func(t *testing.T) {
			s, reg, _ := dockerSite(t)
			e := &suiteEnv{site: s, reg: reg, sg: newSigner(t, "example.com"), dir: t.TempDir()}
			good, unsigned, corrupt := c.setup(t, e)
			opts := func(o *Options) { o.Insecure.Image = c.insecure }
			ctx := context.Background()

			st := openStore(t, filepath.Join(t.TempDir(), "cas"))
			f, _ := newFetcher(t, s, st, e.sg.ks, opts)
			id, err := f.FetchImage(ctx, good, "")
			if err != nil {
				t.Fatalf("fetching %s: %v", good, err)
			}
			info, err := st.Info(id)
			if err != nil || info.Name != c.wantName {
				t.Fatalf("stored %+v (%v), want name %s", info, err, c.wantName)
			}
			if files := rootfsFiles(t, st, id); len(files) == 0 {
				t.Error("the stored image has no files")
			}
			for k, want := range c.wantLabels {
				if got, _ := info.Labels.Get(k); got != want {
					t.Errorf("label %s=%q, want %q", k, got, want)
				}
			}

			// Fetched again: the store's copy, nothing downloaded.
			before := 0
			if c.downloads != nil {
				before = c.downloads(e)
			}
			f2, _ := newFetcher(t, s, st, e.sg.ks, opts)
			id2, err := f2.FetchImage(ctx, good, "")
			if err != nil || id2 != id {
				t.Fatalf("second fetch: %s, %v; want %s", id2, err, id)
			}
			if c.downloads != nil && c.downloads(e) != before {
				t.Errorf("second fetch downloaded the image again (%d transfers, %d before)", c.downloads(e), before)
			}
			if l, _ := st.List(); len(l) != 1 {
				t.Errorf("store lists %d images after two fetches of one", len(l))
			}

			// Signature policy: without --insecure-options=image, an
			// unsigned image is refused, before anything is stored.
			empty := openStore(t, filepath.Join(t.TempDir(), "cas"))
			fs, _ := newFetcher(t, s, empty, e.sg.ks)
			if _, err := fs.FetchImage(ctx, unsigned, ""); !errors.Is(err, trust.ErrUnsigned) {
				t.Errorf("unsigned %s: %v, want ErrUnsigned", unsigned, err)
			}
			if l, _ := empty.List(); len(l) != 0 {
				t.Errorf("refused unsigned image, yet the store lists %v", l)
			}

			// A damaged image: a clear error, nothing stored.
			fc, _ := newFetcher(t, s, empty, e.sg.ks, opts)
			_, err = fc.FetchImage(ctx, corrupt, "")
			if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), c.corruptErr) {
				t.Errorf("damaged %s: %v, want one line mentioning %q", corrupt, err, c.corruptErr)
			}
			if l, _ := empty.List(); len(l) != 0 {
				t.Errorf("damaged image, yet the store lists %v", l)
			}
		})
	}
}

// ociLayoutDir writes img as an OCI image layout, its index entry
// annotated with refName (none when "").
func ociLayoutDir(t testing.TB, img v1.Image, refName string) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var opts []layout.Option
	if refName != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{annotationRefName: refName}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		t.Fatal(err)
	}
	return dir
}

// damageLayer flips a byte of the layout's biggest blob (a layer).
func damageLayer(t testing.TB, dir string) {
	t.Helper()
	var big string
	var size int64
	filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			big, size = p, fi.Size()
		}
		return nil
	})
	b, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(big, tampered(b), 0o644)
}

// tarDir writes dir's files to dst as a tarball, as podman's oci-archive does.
func tarDir(t testing.TB, dir, dst string) {
	t.Helper()
	if err := acibuild.TarDir(dst, dir); err != nil {
		t.Fatal(err)
	}
}
