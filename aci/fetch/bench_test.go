package fetch

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/rktng/rkt/aci/store"
)

// benchSize is the image size of the benchmarks: RKT_BENCH_MB, default 200.
func benchSize() int {
	if mb, err := strconv.Atoi(os.Getenv("RKT_BENCH_MB")); err == nil && mb > 0 {
		return mb << 20
	}
	return 200 << 20
}

// discardStore reads an import like a store would, without keeping it.
type discardStore struct{ *memStore }

func (d discardStore) Import(r io.Reader, opts store.ImportOptions) (store.ImageInfo, error) {
	n, err := io.Copy(io.Discard, r)
	return store.ImageInfo{ID: "sha512-x", Size: n}, err
}

func (d discardStore) GetImageManifest(string) (*schema.ImageManifest, error) {
	return schema.BlankImageManifest(), nil
}

func benchSetup(b *testing.B) (*site, *signer, []byte) {
	s := newSite(b)
	sg := newSigner(b, "example.com")
	aci := testImageSized(b, benchSize())
	s.put("/bench.aci", aci)
	s.put("/bench.aci.asc", sg.sign(b, aci))
	return s, sg, aci
}

// BenchmarkFetchVerifyImport is the whole path: HTTPS download, signature,
// manifest check, import into a real store.
func BenchmarkFetchVerifyImport(b *testing.B) {
	s, sg, aci := benchSetup(b)
	b.SetBytes(int64(len(aci)))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := openStore(&testing.T{}, filepath.Join(b.TempDir(), "cas"))
		f, _ := newFetcher(b, s, st, sg.ks, func(o *Options) { o.Progress = nil })
		b.StartTimer()
		if _, err := f.FetchImage(context.Background(), "https://example.com/bench.aci", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchVerify is the path without the store's work.
func BenchmarkFetchVerify(b *testing.B) {
	s, sg, aci := benchSetup(b)
	b.SetBytes(int64(len(aci)))
	for i := 0; i < b.N; i++ {
		f, _ := newFetcher(b, s, discardStore{newMemStore()}, sg.ks, func(o *Options) { o.Progress = nil })
		if _, err := f.FetchImage(context.Background(), "https://example.com/bench.aci", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDownloadOnly is what curl does.
func BenchmarkDownloadOnly(b *testing.B) {
	s, _, aci := benchSetup(b)
	b.SetBytes(int64(len(aci)))
	c := s.Client()
	for i := 0; i < b.N; i++ {
		resp, err := c.Get("https://example.com/bench.aci")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkStoreImport is the store alone, from memory.
func BenchmarkStoreImport(b *testing.B) {
	aci := testImageSized(b, benchSize())
	b.SetBytes(int64(len(aci)))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := openStore(&testing.T{}, filepath.Join(b.TempDir(), "cas"))
		b.StartTimer()
		if _, err := st.Import(bytes.NewReader(aci), store.ImportOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
