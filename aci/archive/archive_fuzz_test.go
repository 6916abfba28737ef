package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rktng/rkt/aci/acibuild"
)

// fuzzSeeds are archives from the tests: good ones in every compression,
// the malicious and broken ones the validator must refuse.
func fuzzSeeds(f *testing.F) [][]byte {
	t := &testing.T{}
	good := image(t, acibuild.RawFile("rootfs/a", "data"), acibuild.RawLink(tar.TypeSymlink, "rootfs/l", "a"),
		acibuild.RawLink(tar.TypeLink, "rootfs/h", "rootfs/a"), acibuild.RawDir("rootfs/d/"))
	seeds := [][]byte{
		good, gzipped(t, good),
		image(t, acibuild.RawFile("rootfs/../escape", "x")),
		image(t, acibuild.RawLink(tar.TypeSymlink, "rootfs/x", "/etc"), acibuild.RawFile("rootfs/x/passwd", "x")),
		image(t, paxEntry("rootfs/caps", map[string]string{"SCHILY.xattr.security.capability": capValue(0x02000001, 20)}, nil)),
		image(t, paxEntry("rootfs/big", nil, func(h *tar.Header) { h.Uid = 1<<32 + 1 })),
		acibuild.InsertEntry(image(t), acibuild.GNUSparseEntry("rootfs/s", 1<<20, [][2]int64{{0, 512}, {1<<20 - 512, 512}}, make([]byte, 1024))),
		rawTar(t, acibuild.RawManifest(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"x","dependencies":[{"imageName":"x"}]}`), acibuild.RawDir("rootfs/")),
	}
	return seeds
}

// FuzzArchive feeds whole (compressed) archives to the reader, the
// validator and the extractor: nothing may panic, refusals must name a
// category, and what is accepted must extract below the destination only.
func FuzzArchive(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rc, err := NewReader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("NewReader: uncategorised error %v", err)
			}
			return
		}
		defer rc.Close()
		base := t.TempDir()
		dst := filepath.Join(base, "dst")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		v := NewValidator()
		v.MaxRenderedSize = 64 << 20 // the fuzzer's disk is small
		x, err := NewExtractor(dst)
		if err != nil {
			t.Fatal(err)
		}
		x.MaxRenderedSize = 64 << 20
		_, err = v.Scan(io.LimitReader(rc, 256<<20), x.Entry)
		x.Close()
		if err != nil {
			for _, cat := range []error{ErrCorrupt, ErrInvalidManifest, ErrUnsafeEntry, ErrDuplicateEntry, ErrInvalidLayout, ErrTooLarge} {
				if errors.Is(err, cat) {
					return
				}
			}
			if strings.Contains(err.Error(), "extracting") {
				return // the destination refused it (a name the test's file system cannot take)
			}
			t.Fatalf("Scan: uncategorised error %v", err)
		}
		ents, _ := os.ReadDir(base)
		if len(ents) != 1 {
			t.Fatalf("extraction wrote beside its destination: %v", ents)
		}
	})
}

// FuzzImageManifest feeds manifests to the validator's manifest check: an
// accepted manifest serializes again, and names itself.
func FuzzImageManifest(f *testing.F) {
	f.Add([]byte(goodManifest))
	f.Add([]byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app","labels":[{"name":"version","value":"1"},{"name":"os","value":"linux"}],
"app":{"exec":["/bin/app","-x"],"user":"0","group":"0","environment":[{"name":"A","value":"b"}],"ports":[{"name":"http","protocol":"tcp","port":80}],
"mountPoints":[{"name":"data","path":"/data"}],"isolators":[{"name":"resource/memory","value":{"limit":"1G"}}]},
"dependencies":[{"imageName":"example.com/base","labels":[{"name":"version","value":"2"}]}],"pathWhitelist":["/bin/app"],
"annotations":[{"name":"created","value":"2020-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/self","dependencies":[{"imageName":"example.com/self"}]}`))
	f.Add([]byte(`{"acKind":"PodManifest","acVersion":"0.8.11"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, got, err := NewValidator().CheckManifest(bytes.NewReader(raw))
		if err != nil {
			if !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("uncategorised error %v", err)
			}
			return
		}
		if !bytes.Equal(got, raw) {
			t.Fatal("raw manifest changed")
		}
		if _, err := m.MarshalJSON(); err != nil {
			t.Fatalf("accepted manifest does not serialize: %v", err)
		}
	})
}
