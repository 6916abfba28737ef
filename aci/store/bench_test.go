package store

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rktng/rkt/aci/acibuild"
)

// writeSyntheticImage writes a plain ACI of nfiles regular files totalling
// about total bytes, in nfiles/50 directories two levels deep. Sizes are
// skewed like a real rootfs (many small files, a few large ones); half the
// content is random and half repetitive text, so that it compresses a bit.
func writeSyntheticImage(w io.Writer, nfiles int, total int64) error {
	m, err := acibuild.Manifest("example.com/bench", map[string]string{"version": "1", "os": "linux", "arch": "amd64"})
	if err != nil {
		return err
	}
	mdata, err := m.MarshalJSON()
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(42, 7))
	weights := make([]float64, nfiles)
	var sum float64
	for i := range weights {
		weights[i] = rng.ExpFloat64() * rng.ExpFloat64() * rng.ExpFloat64()
		sum += weights[i]
	}
	tw := tar.NewWriter(w)
	hdr := func(h *tar.Header) error {
		h.ModTime = acibuild.DefaultModTime
		return tw.WriteHeader(h)
	}
	if err := hdr(&tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(mdata))}); err != nil {
		return err
	}
	tw.Write(mdata)
	if err := hdr(&tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return err
	}
	ndirs := max(nfiles/50, 1)
	noise := rand.NewChaCha8([32]byte{42})
	text := []byte("the quick brown fox jumps over the lazy dog; lorem ipsum dolor sit amet 0123456789\n")
	buf := make([]byte, 1<<20)
	for i := 0; i < nfiles; i++ {
		d := i * ndirs / nfiles
		if i == 0 || (i-1)*ndirs/nfiles != d {
			if d%10 == 0 {
				if err := hdr(&tar.Header{Name: fmt.Sprintf("rootfs/usr%d/", d/10), Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
					return err
				}
			}
			if err := hdr(&tar.Header{Name: fmt.Sprintf("rootfs/usr%d/lib%d/", d/10, d), Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				return err
			}
		}
		size := int64(weights[i] / sum * float64(total))
		name := fmt.Sprintf("rootfs/usr%d/lib%d/file-%05d.so", d/10, d, i)
		if err := hdr(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: size}); err != nil {
			return err
		}
		for left := size; left > 0; {
			n := min(left, int64(len(buf)))
			chunk := buf[:n]
			if i%2 == 0 {
				noise.Read(chunk)
			} else {
				for j := 0; j < len(chunk); j += copy(chunk[j:], text) {
				}
			}
			if _, err := tw.Write(chunk); err != nil {
				return err
			}
			left -= n
		}
	}
	return tw.Close()
}

// benchImage returns a 200 MiB / 10,000-file ACI. RKT_BENCH_ACI names an
// image to use instead; when that file does not exist the synthetic image
// is written there, so that peer tools can be timed on the same bytes.
func benchImage(b *testing.B) string {
	b.Helper()
	p := os.Getenv("RKT_BENCH_ACI")
	if p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	} else {
		p = filepath.Join(b.TempDir(), "bench.aci")
	}
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := writeSyntheticImage(bw, 10000, 200<<20); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkImportRender is the first "rkt run" of an image: Import into an
// empty store, then RenderTree. Compare with sha512sum + tar -x of the same
// file (see the package's LAYOUT.md for the numbers measured).
func BenchmarkImportRender(b *testing.B) {
	img := benchImage(b)
	fi, err := os.Stat(img)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	// Deleting 10,000 files makes ext4 slow at creating the next ones for
	// minutes (it avoids recently freed inodes): RKT_BENCH_DIR keeps the
	// stores of the runs there instead of deleting them.
	keep := os.Getenv("RKT_BENCH_DIR")
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "cas")
		if keep != "" {
			if dir, err = os.MkdirTemp(keep, "cas-"); err != nil {
				b.Fatal(err)
			}
		}
		s, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(img)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		info, err := s.Import(f, ImportOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.RenderTree(info.ID); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f.Close()
		if keep == "" {
			os.RemoveAll(dir)
		}
		b.StartTimer()
	}
}

// BenchmarkCachedRun is the store's part of every later "rkt run": open
// the store, resolve the image, find its tree rendered, mark it used.
func BenchmarkCachedRun(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "cas"))
	if err != nil {
		b.Fatal(err)
	}
	m, _ := acibuild.Manifest("example.com/small", nil)
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(acibuild.Build(pw, m, []acibuild.File{{Path: "bin/true", Mode: 0o755, Data: []byte("x")}}))
	}()
	info, err := s.Import(pr, ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(s.Dir())
		if err != nil {
			b.Fatal(err)
		}
		id, err := s.ResolveKey(info.ID[:20])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.RenderTree(id); err != nil {
			b.Fatal(err)
		}
		if err := s.MarkUsed(time.Now(), id); err != nil {
			b.Fatal(err)
		}
	}
}
