package tests

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/rktng/rkt/aci/fetch/fetchtest"
	"github.com/rktng/rkt/tests/testutil"
)

// dockerLayer is a gzip'ed layer of the given files (mode 0755 for a name
// in exec, 0644 otherwise; a name ending in / is a directory).
func dockerLayer(t *testing.T, files map[string][]byte, exec ...string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(data))}
		for _, e := range exec {
			if e == name {
				h.Mode = 0o755
			}
		}
		if strings.HasSuffix(name, "/") {
			h.Mode, h.Typeflag, h.Size = 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startRegistry serves go-containerregistry's in-process registry on
// 127.0.0.1 over plain HTTP for the test's life; host is its host:port.
func startRegistry(t *testing.T) (reg *fetchtest.Registry, host string) {
	t.Helper()
	reg = fetchtest.NewRegistry()
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return reg, strings.TrimPrefix(srv.URL, "http://")
}

// TestDockerImages pushes an image to go-containerregistry's in-process
// registry on 127.0.0.1 (plain HTTP) and fetches and runs it through
// docker://: plain HTTP needs --insecure-options=http; a digest-pinned
// reference runs verified by its digest, a tag needs
// --insecure-options=image; the converted manifest carries what docker2aci
// wrote; re-fetching an unchanged image downloads no layer.
func TestDockerImages(t *testing.T) {
	t.Parallel()
	c0 := testutil.New(t)
	reg, host := startRegistry(t)

	inspect, err := os.ReadFile(c0.A.Inspect)
	if err != nil {
		t.Fatal(err)
	}
	base := dockerLayer(t, map[string][]byte{
		"inspect": inspect, "etc/": nil, "etc/passwd": []byte(testutil.Passwd), "oldfile": []byte("gone soon"), "tmp/": nil,
	}, "inspect")
	top := dockerLayer(t, map[string][]byte{"etc/motd": []byte("hello from a layer"), ".wh.oldfile": nil})
	img := fetchtest.Image(t, v1.Config{
		Entrypoint:   []string{"/inspect"},
		Cmd:          []string{"--print-msg=docker-ran", "--read-file=/etc/motd", "--stat-file=/oldfile"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
		Env:          []string{"PATH=/bin"},
		WorkingDir:   "/",
	}, v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, base, top)
	fetchtest.Push(t, host+"/test/app:latest", http.DefaultTransport, "", "", img)
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	byTag := "docker://" + host + "/test/app:latest"
	byDigest := "docker://" + host + "/test/app@" + digest.String()
	ran := func(c *testutil.Ctx, r testutil.Result) {
		c.T.Helper()
		c.ExpectOK(r)
		for _, want := range []string{"docker-ran", "<<<hello from a layer>>>", "/oldfile: missing"} {
			if !strings.Contains(r.Stdout, want) {
				c.T.Errorf("the docker image's app did not print %q (layers squashed with whiteouts): %v", want, r)
			}
		}
	}

	t.Run("plain HTTP needs insecure http", func(t *testing.T) {
		c := testutil.New(t)
		expectRefused(c, c.Rkt("fetch", byDigest), host, "--insecure-options=http")
		expectStoreEmpty(c)
	})

	t.Run("tag needs insecure image", func(t *testing.T) {
		c := testutil.New(t)
		expectRefused(c, c.Rkt("--insecure-options=http", "fetch", byTag), byTag, "--insecure-options=image", "@sha256:")
		expectStoreEmpty(c)
	})

	t.Run("digest runs verified", func(t *testing.T) {
		c := testutil.New(t)
		before := reg.LayerGets(t, img)
		ran(c, c.Rkt(append([]string{"--insecure-options=http"}, runArgs(c, byDigest)...)...))
		if n := reg.LayerGets(t, img) - before; n != 2 {
			t.Errorf("want each of the 2 layers downloaded once, got %d layer downloads", n)
		}
	})

	t.Run("tag, converted manifest, re-fetch", func(t *testing.T) {
		c := testutil.New(t)
		before := reg.LayerGets(t, img)
		id := fetchedID(c, c.Rkt("--insecure-options=http,image", "fetch", byTag))
		if n := reg.LayerGets(t, img) - before; n != 2 {
			t.Errorf("first fetch: want 2 layer downloads, got %d", n)
		}
		r := c.ExpectOK(c.Rkt("image", "cat-manifest", id))
		var m schema.ImageManifest
		if err := json.Unmarshal([]byte(r.Stdout), &m); err != nil {
			t.Fatalf("cat-manifest: %v: %v", err, r)
		}
		for name, want := range map[string]string{"version": "latest", "os": "linux", "arch": "amd64"} {
			if runtime.GOARCH != "amd64" && name == "arch" {
				continue
			}
			if got, _ := m.GetLabel(name); got != want {
				t.Errorf("label %s=%q, want %q", name, got, want)
			}
		}
		if m.App == nil || len(m.App.Ports) != 1 || m.App.Ports[0].Name.String() != "80-tcp" || m.App.Ports[0].Port != 80 || m.App.Ports[0].Protocol != "tcp" {
			t.Errorf("ports: want one named 80-tcp (tcp/80), got %+v", m.App)
		}
		ann := map[string]string{}
		for _, a := range m.Annotations {
			ann[a.Name.String()] = a.Value
		}
		for k, want := range map[string]string{
			"appc.io/docker/originalname": host + "/test/app:latest",
			"appc.io/docker/registryurl":  host,
			"appc.io/docker/repository":   "test/app",
			"appc.io/docker/tag":          "latest",
			"appc.io/docker/entrypoint":   `["/inspect"]`,
			"appc.io/docker/cmd":          `["--print-msg=docker-ran","--read-file=/etc/motd","--stat-file=/oldfile"]`,
			"appc.io/docker/manifesthash": digest.String(),
			"appc.io/docker/imageid":      "",
		} {
			got, ok := ann[k]
			if !ok || (want != "" && got != want) || got == "" {
				t.Errorf("annotation %s=%q, want %q", k, got, want)
			}
		}

		before = reg.LayerGets(t, img)
		r = c.Rkt("--insecure-options=http,image", "fetch", "--pull-policy=update", byTag)
		if again := fetchedID(c, r); again != id {
			t.Errorf("re-fetch of the unchanged image: %s, want %s", again, id)
		}
		if n := reg.LayerGets(t, img) - before; n != 0 {
			t.Errorf("re-fetch of an unchanged image downloaded %d layers, want none: %v", n, r)
		}
		ran(c, c.Rkt(append([]string{"--insecure-options=http,image"}, runArgs(c, byTag)...)...))
	})
}
