package fetch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestOCILayout: picking an image of a layout by REF, naming it, a
// multi-platform index, and the errors a wrong layout gives.
func TestOCILayout(t *testing.T) {
	s := newSite(t)
	st := openStore(t, filepath.Join(t.TempDir(), "cas"))
	f, out := newFetcher(t, s, st, nil, func(o *Options) { o.Insecure.Image = true })
	ctx := context.Background()
	name := func(id string) string {
		t.Helper()
		m, err := st.GetImageManifest(id)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := m.GetLabel("version")
		return m.Name.String() + ":" + v
	}

	// Two images: REF picks one; without it the error lists them.
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	p.AppendImage(appImage(t, amd64, "a"), layout.WithAnnotations(map[string]string{annotationRefName: "a"}))
	p.AppendImage(appImage(t, amd64, "b"), layout.WithAnnotations(map[string]string{
		annotationRefName: "v2", annotationContainerdName: "docker.io/library/bee:v2"}))
	if _, err := f.FetchImage(ctx, "oci:"+dir, ""); err == nil || !strings.Contains(err.Error(), "holds 2 images (a, v2): name one with :REF") {
		t.Errorf("two images, no REF: %v", err)
	}
	if _, err := f.FetchImage(ctx, "oci:"+dir+":c", ""); err == nil || !strings.Contains(err.Error(), `no image named "c"`) {
		t.Errorf("unknown REF: %v", err)
	}
	id, err := f.FetchImage(ctx, "oci:"+dir+":a", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := name(id), "localhost/"+strings.ToLower(filepath.Base(dir))+":a"; got != want {
		t.Errorf("REF a: %s, want %s", got, want)
	}
	// The full name containerd and docker save write wins over the tag.
	id, err = f.FetchImage(ctx, "oci:"+dir+":docker.io/library/bee:v2", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := name(id); got != "registry-1.docker.io/library/bee:v2" {
		t.Errorf("containerd name: %s", got)
	}
	// Converted once: a second fetch finds it by its manifest digest.
	out.Reset()
	if id2, err := f.FetchImage(ctx, "oci:"+dir+":v2", ""); err != nil || id2 != id || !strings.Contains(out.String(), "is unchanged") {
		t.Errorf("refetch: %s %v, output %q", id2, err, out.String())
	}

	// A multi-platform index: this machine's image.
	multi := t.TempDir()
	mp, _ := layout.Write(multi, empty.Index)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: appImage(t, arm64, "arm64"), Descriptor: v1.Descriptor{Platform: &arm64}},
		mutate.IndexAddendum{Add: appImage(t, amd64, "amd64"), Descriptor: v1.Descriptor{Platform: &amd64}})
	if err := mp.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationRefName: "multi:1"})); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "multi.tar")
	tarDir(t, multi, tarball)
	id, err = f.FetchImage(ctx, "oci-archive:"+tarball, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := rootfsFiles(t, st, id)["rootfs/etc/marker"]; got != "amd64" || name(id) != "registry-1.docker.io/library/multi:1" {
		t.Errorf("multi-platform: marker %q, name %s", got, name(id))
	}

	// Not a layout.
	plain := t.TempDir()
	os.WriteFile(filepath.Join(plain, "index.json"), []byte("{}"), 0o644)
	if _, err := f.FetchImage(ctx, "oci:"+plain, ""); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("not a layout: %v", err)
	}
	notTar := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(notTar, []byte("hello"), 0o644)
	if _, err := f.FetchImage(ctx, "oci-archive:"+notTar, ""); err == nil || !strings.Contains(err.Error(), notTar) {
		t.Errorf("not a tarball: %v", err)
	}
	if _, err := f.FetchImage(ctx, "oci-archive:/nonexistent.tar", ""); err == nil || !strings.Contains(err.Error(), "/nonexistent.tar") {
		t.Errorf("missing archive: %v", err)
	}
}
