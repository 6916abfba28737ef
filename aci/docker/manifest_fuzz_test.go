package docker

import (
	"bytes"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FuzzDockerConfig feeds image configs (a registry's JSON) to the parser and
// to their conversion into an image manifest, which must then be one that
// serializes: it is written into the ACI as is.
func FuzzDockerConfig(f *testing.F) {
	f.Add([]byte(`{"architecture":"amd64","os":"linux","author":"me","created":"2020-01-02T03:04:05Z",
"config":{"User":"1000:1000","Env":["PATH=/bin","A=b=c"],"Entrypoint":["/bin/sh"],"Cmd":["-c","x"],
"WorkingDir":"srv","ExposedPorts":{"80/tcp":{},"53/udp":{},"8080":{}},"Volumes":{"/data":{},"/data/":{}}}}`), "example.com/app:1.0")
	f.Add([]byte(`{"architecture":"arm","variant":"v7","os":"linux","config":{}}`), "busybox@sha256:0123456789012345678901234567890123456789012345678901234567890123")
	f.Add([]byte(`{"architecture":"","os":"","config":{"User":"nobody"}}`), "registry:5000/org/app")
	f.Fuzz(func(t *testing.T, cfgJSON []byte, refStr string) {
		cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgJSON))
		if err != nil {
			return
		}
		ref, err := ParseReference(refStr)
		if err != nil {
			return
		}
		m, err := buildManifest(ref, "sha256:0", "sha256:1", "", cfg)
		if err != nil {
			return
		}
		if _, err := m.MarshalJSON(); err != nil {
			t.Fatalf("manifest of config %s does not serialize: %v", cfgJSON, err)
		}
	})
}

// FuzzDockerManifest feeds registry manifests and indexes, and references,
// to their parsers.
func FuzzDockerManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"sha256:0123456789012345678901234567890123456789012345678901234567890123"},
"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":3,"digest":"sha256:0123456789012345678901234567890123456789012345678901234567890123"}]}`), "quay.io/org/app:tag")
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
"digest":"sha256:0123456789012345678901234567890123456789012345678901234567890123","platform":{"architecture":"amd64","os":"linux"}}]}`), "busybox")
	f.Fuzz(func(t *testing.T, raw []byte, refStr string) {
		if m, err := v1.ParseManifest(bytes.NewReader(raw)); err == nil {
			for _, l := range m.Layers {
				_ = l.Digest.String()
			}
		}
		if idx, err := v1.ParseIndexManifest(bytes.NewReader(raw)); err == nil {
			for _, d := range idx.Manifests {
				if d.Platform != nil {
					_ = d.Platform.String()
				}
			}
		}
		ref, err := ParseReference(refStr)
		if err != nil {
			return
		}
		_, _, _, _ = ref.Registry(), ref.Repository(), ref.Tag(), ref.Digest()
		_ = ref.Pinned()
		if _, err := ImageName(ref); err != nil {
			t.Logf("ImageName(%q): %v", refStr, err)
		}
	})
}
