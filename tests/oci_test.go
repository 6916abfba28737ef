package tests

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/aci/fetch/fetchtest"
	"github.com/rktng/rkt/tests/testutil"
)

// TestOCIArchiveImages writes an OCI image layout the way podman and
// skopeo do (a directory, and a tarball of it) and fetches and runs it
// through oci-archive: and oci:, converted like a docker image: refused
// without --insecure-options=image (nothing stored), run with it, named
// from the layout's ref.name, converted once.
func TestOCIArchiveImages(t *testing.T) {
	t.Parallel()
	c0 := testutil.New(t)
	inspect, err := os.ReadFile(c0.A.Inspect)
	if err != nil {
		t.Fatal(err)
	}
	base := dockerLayer(t, map[string][]byte{"inspect": inspect, "etc/": nil, "etc/passwd": []byte(testutil.Passwd), "tmp/": nil}, "inspect")
	top := dockerLayer(t, map[string][]byte{"etc/motd": []byte("hello from an OCI layer")})
	img := fetchtest.Image(t, v1.Config{
		Entrypoint: []string{"/inspect"},
		Cmd:        []string{"--print-msg=oci-ran", "--read-file=/etc/motd"},
		Env:        []string{"PATH=/bin"},
	}, v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, base, top)
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "quay.io/test/ociapp:1.0"})); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "ociapp.tar")
	writeTarOf(t, dir, archive)

	t.Run("needs insecure image", func(t *testing.T) {
		c := testutil.New(t)
		expectRefused(c, c.Rkt("fetch", "oci-archive:"+archive), archive, "--insecure-options=image")
		expectStoreEmpty(c)
	})

	t.Run("archive and directory run", func(t *testing.T) {
		c := testutil.New(t)
		id := fetchedID(c, c.Rkt("--insecure-options=image", "fetch", "oci-archive:"+archive+":quay.io/test/ociapp:1.0"))
		r := c.ExpectOK(c.Rkt("image", "list", "--no-legend", "--fields=name"))
		if !strings.Contains(r.Stdout, "quay.io/test/ociapp:1.0") {
			t.Errorf("image list: want quay.io/test/ociapp:1.0, got %q", r.Stdout)
		}
		// The same image from the directory: converted already.
		r = c.Rkt("--insecure-options=image", "fetch", "oci:"+dir)
		if again := fetchedID(c, r); again != id || !strings.Contains(r.Stderr, "unchanged") {
			t.Errorf("fetch of the same image from its directory: %s, want %s without converting again: %v", again, id, r)
		}
		r = c.ExpectOK(c.Rkt(append([]string{"--insecure-options=image"}, runArgs(c, "oci-archive:"+archive)...)...))
		for _, want := range []string{"oci-ran", "<<<hello from an OCI layer>>>"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("the OCI image's app did not print %q: %v", want, r)
			}
		}
	})
}

// writeTarOf writes dir's files to dst as a tarball, as podman's oci-archive does.
func writeTarOf(t *testing.T, dir, dst string) {
	t.Helper()
	if err := acibuild.TarDir(dst, dir); err != nil {
		t.Fatal(err)
	}
}
