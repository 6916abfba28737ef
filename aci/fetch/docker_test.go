package fetch

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/rktng/rkt/aci/docker"
	"github.com/rktng/rkt/aci/fetch/fetchtest"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
	"github.com/rktng/rkt/common/config"
)

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

func dockerSite(t *testing.T) (*site, *fetchtest.Registry, string) {
	s := newSite(t)
	reg := fetchtest.NewRegistry()
	s.Mux.Handle("/v2/", reg)
	return s, reg, strings.TrimPrefix(s.Plain.URL, "http://")
}

func appImage(t *testing.T, platform v1.Platform, marker string) v1.Image {
	return fetchtest.Image(t, v1.Config{
		Entrypoint:   []string{"/bin/entry"},
		Cmd:          []string{"--flag", "x y"},
		Env:          []string{"PATH=/usr/bin:/bin", "GREETING=hi=there"},
		WorkingDir:   "/srv",
		User:         "1000:100",
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
	}, platform,
		fetchtest.Layer(t, fetchtest.TarEntry{Name: "bin/", Dir: true}, fetchtest.TarEntry{Name: "bin/entry", Body: "#!/bin/sh\n"}, fetchtest.TarEntry{Name: "etc/old", Body: "old"}),
		fetchtest.Layer(t, fetchtest.TarEntry{Name: "etc/.wh.old"}, fetchtest.TarEntry{Name: "etc/marker", Body: marker}),
	)
}

// rootfsFiles reads the stored image's regular files.
func rootfsFiles(t *testing.T, st *store.Store, id string) map[string]string {
	rc, err := st.ReadStream(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[h.Name] = string(b)
		}
	}
}

func TestDockerTag(t *testing.T) {
	s, reg, host := dockerSite(t)
	img := appImage(t, amd64, "v1")
	fetchtest.Push(t, host+"/library/app:1.0", http.DefaultTransport, "", "", img)
	st := openStore(t, filepath.Join(t.TempDir(), "cas"))
	ref := "docker://" + host + "/library/app:1.0"

	// A tag cannot be verified.
	f, _ := newFetcher(t, s, st, nil)
	if _, err := f.FetchImage(context.Background(), ref, ""); !errors.Is(err, trust.ErrUnsigned) || !strings.Contains(err.Error(), "pin a digest") {
		t.Fatalf("tag without --insecure-options=image: %v", err)
	}
	// Nor is a plain-HTTP registry allowed by default.
	f, _ = newFetcher(t, s, st, nil, func(o *Options) { o.Insecure.Image = true })
	if _, err := f.FetchImage(context.Background(), ref, ""); !errors.Is(err, docker.ErrInsecure) || !strings.Contains(err.Error(), "--insecure-options=http") {
		t.Fatalf("http registry: %v", err)
	}
	if reg.BlobGets() != 0 {
		t.Fatal("refused fetches downloaded blobs")
	}
	if l, _ := st.List(); len(l) != 0 {
		t.Fatal("refused fetches stored images")
	}

	f, out := newFetcher(t, s, st, nil, func(o *Options) {
		o.Insecure = InsecureOptions{Image: true, HTTP: true}
		o.PullPolicy = PullUpdate
	})
	id, err := f.FetchImage(context.Background(), ref, "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetImageManifest(id)
	if err != nil {
		t.Fatal(err)
	}
	wantName := strings.ReplaceAll(host, ":", "_") + "/library/app"
	if m.Name.String() != wantName {
		t.Errorf("name %s, want %s", m.Name, wantName)
	}
	for k, v := range map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"} {
		if got, _ := m.GetLabel(k); got != v {
			t.Errorf("label %s = %q", k, got)
		}
	}
	d, _ := img.Digest()
	cfgName, _ := img.ConfigName()
	for k, v := range map[string]string{
		docker.AnnOriginalName: host + "/library/app:1.0",
		docker.AnnRegistryURL:  host,
		docker.AnnRepository:   "library/app",
		docker.AnnTag:          "1.0",
		docker.AnnImageID:      cfgName.String(),
		docker.AnnManifestHash: d.String(),
		docker.AnnEntrypoint:   `["/bin/entry"]`,
		docker.AnnCmd:          `["--flag","x y"]`,
	} {
		if got, _ := m.Annotations.Get(k); got != v {
			t.Errorf("annotation %s = %q, want %q", k, got, v)
		}
	}
	if m.App == nil || strings.Join(m.App.Exec, "|") != "/bin/entry|--flag|x y" || m.App.User != "1000" || m.App.Group != "100" || m.App.WorkingDirectory != "/srv" {
		t.Errorf("app %+v", m.App)
	}
	if v, _ := m.App.Environment.Get("GREETING"); v != "hi=there" {
		t.Errorf("env %v", m.App.Environment)
	}
	var ports []string
	for _, p := range m.App.Ports {
		ports = append(ports, p.Name.String()+"/"+p.Protocol)
	}
	if strings.Join(ports, ",") != "53-udp/udp,80-tcp/tcp" {
		t.Errorf("ports %v", ports)
	}
	if len(m.App.MountPoints) != 1 || m.App.MountPoints[0].Name != "volume-data" {
		t.Errorf("mount points %v", m.App.MountPoints)
	}
	files := rootfsFiles(t, st, id)
	if files["rootfs/etc/marker"] != "v1" || files["rootfs/bin/entry"] == "" {
		t.Errorf("files %v", files)
	}
	if _, ok := files["rootfs/etc/old"]; ok {
		t.Error("whited-out file present")
	}

	// Fetching the unchanged tag again downloads no layer.
	layerGets := reg.LayerGets(t, img)
	if layerGets != 2 {
		t.Errorf("first fetch got %d layers", layerGets)
	}
	if id2, err := f.FetchImage(context.Background(), ref, ""); err != nil || id2 != id {
		t.Fatalf("re-fetch: %v", err)
	}
	if n := reg.LayerGets(t, img); n != layerGets {
		t.Errorf("re-fetch downloaded %d more layers", n-layerGets)
	}
	if !strings.Contains(out.String(), "unchanged") {
		t.Errorf("output:\n%s", out)
	}

	// A new image under the tag is converted anew.
	img2 := appImage(t, amd64, "v2")
	fetchtest.Push(t, host+"/library/app:1.0", http.DefaultTransport, "", "", img2)
	id3, err := f.FetchImage(context.Background(), ref, "")
	if err != nil || id3 == id {
		t.Fatalf("new image: %v %s", err, id3)
	}
	if rootfsFiles(t, st, id3)["rootfs/etc/marker"] != "v2" {
		t.Error("new image content")
	}
}

func TestDockerDigestAndIndex(t *testing.T) {
	s, _, host := dockerSite(t)
	dAMD := appImage(t, amd64, "amd64")
	dARM := appImage(t, arm64, "arm64")
	idxDigest := fetchtest.Push(t, host+"/multi:latest", http.DefaultTransport, "", "", dARM, dAMD)
	st := openStore(t, filepath.Join(t.TempDir(), "cas"))

	// Pinned by digest: verified, no --insecure-options=image needed; the
	// index resolves to this machine's platform.
	f, _ := newFetcher(t, s, st, nil, func(o *Options) { o.Insecure.HTTP = true })
	id, err := f.FetchImage(context.Background(), "docker://"+host+"/multi@"+idxDigest.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	if rootfsFiles(t, st, id)["rootfs/etc/marker"] != "amd64" {
		t.Error("wrong platform picked")
	}
	m, _ := st.GetImageManifest(id)
	if v, _ := m.GetLabel("version"); v != idxDigest.String() {
		t.Errorf("version label %q, want the digest asked for", v)
	}
	amdDigest, _ := dAMD.Digest()
	if v, _ := m.Annotations.Get(docker.AnnManifestHash); v != amdDigest.String() {
		t.Errorf("manifest hash %q, want the platform image's", v)
	}
	// A digest that does not match what the registry serves is refused.
	bad := "sha256:" + strings.Repeat("0", 64)
	if _, err := f.FetchImage(context.Background(), "docker://"+host+"/multi@"+bad, ""); err == nil {
		t.Error("unknown digest accepted")
	}
}

func TestDockerTLSAndAuth(t *testing.T) {
	s, reg, host := dockerSite(t)
	reg.User, reg.Password = "alice", "secret"
	img := appImage(t, amd64, "tls")
	d := fetchtest.Push(t, host+"/org/app:v1", http.DefaultTransport, "alice", "secret", img)
	st := openStore(t, filepath.Join(t.TempDir(), "cas"))
	ref := "docker://example.com/org/app@" + d.String()

	f, _ := newFetcher(t, s, st, nil)
	if _, err := f.FetchImage(context.Background(), ref, ""); err == nil || !strings.Contains(err.Error(), "dockerAuth") {
		t.Fatalf("no credentials: %v", err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "auth.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "auth.d/d.json"), []byte(`{"rktKind":"dockerAuth","rktVersion":"v1","registries":["example.com"],"credentials":{"user":"alice","password":"secret"}}`), 0o644)
	cfg, err := config.Load("", dir, "")
	if err != nil {
		t.Fatal(err)
	}
	// Over HTTPS (the test CA), with credentials, pinned: no insecure option.
	f, _ = newFetcher(t, s, st, nil, func(o *Options) { o.Config = cfg })
	id, err := f.FetchImage(context.Background(), ref, "")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := st.GetImageManifest(id); m.Name != "example.com/org/app" {
		t.Errorf("name %s", m.Name)
	}
}
