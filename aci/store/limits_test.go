package store

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/aci/archive"
)

// assertUnchanged checks that a refused import left nothing behind.
func assertUnchanged(t *testing.T, s *Store) {
	t.Helper()
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("listed: %+v", list)
	}
	if trees, _ := s.ListTrees(); len(trees) != 0 {
		t.Errorf("trees: %v", trees)
	}
	assertTmpEmpty(t, s)
	assertNoBlobs(t, s)
}

func bomb(t *testing.T, size int64) io.Reader {
	t.Helper()
	r, err := acibuild.ZeroBomb("example.com/bomb", size)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestImageSizeLimit(t *testing.T) {
	s := newStore(t)
	s.Limits = Limits{MaxImageSize: 4 << 20, MaxRenderedSize: 1 << 40}
	for _, noRender := range []bool{false, true} {
		_, err := s.Import(bomb(t, 8<<20), ImportOptions{NoRender: noRender})
		if !errors.Is(err, archive.ErrTooLarge) || !strings.Contains(err.Error(), "limit of 4MiB uncompressed") {
			t.Fatalf("8 MiB image under a 4 MiB limit: %v", err)
		}
		assertUnchanged(t, s)
	}
	// Under the limit, the same image goes in.
	if _, err := s.Import(bomb(t, 2<<20), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestRenderedSizeLimitAtImport(t *testing.T) {
	s := newStore(t)
	s.Limits = Limits{MaxRenderedSize: 3 << 20}
	_, err := s.Import(bomb(t, 4<<20), ImportOptions{NoRender: true})
	if !errors.Is(err, archive.ErrTooLarge) || !strings.Contains(err.Error(), `"rootfs/zeros"`) || !strings.Contains(err.Error(), "rendered-size limit of 3MiB") {
		t.Fatalf("got %v", err)
	}
	assertUnchanged(t, s)
}

func TestRenderedSizeLimitOverLayers(t *testing.T) {
	s := newStore(t)
	base := testImage{name: "example.com/base", files: []acibuild.File{file("big", strings.Repeat("b", 300<<10))}}
	importImage(t, s, base)
	top := testImage{name: "example.com/top", files: []acibuild.File{file("big2", strings.Repeat("t", 300<<10))},
		edit: dependsOn(dep("example.com/base"))}
	info := importImage(t, s, top)
	s.Limits = Limits{MaxRenderedSize: 500 << 10}
	_, err := s.RenderTree(info.ID)
	if !errors.Is(err, archive.ErrTooLarge) || !strings.Contains(err.Error(), "500KiB") {
		t.Fatalf("two 300 KiB layers under a 500 KiB limit: %v", err)
	}
	if trees, _ := s.ListTrees(); len(trees) != 1 { // base's own, rendered at import
		t.Errorf("trees: %v", trees)
	}
	assertTmpEmpty(t, s)
}

func TestFreeSpace(t *testing.T) {
	s := newStore(t)
	defer func(f func(string) (int64, error)) { freeSpace = f }(freeSpace)
	free := int64(6 << 20)
	freeSpace = func(string) (int64, error) { return free, nil }
	// Rendering in the same pass doubles what an import costs.
	for _, c := range []struct {
		size     int64
		noRender bool
	}{{8 << 20, true}, {4 << 20, false}} {
		start := time.Now()
		_, err := s.Import(bomb(t, c.size), ImportOptions{NoRender: c.noRender})
		if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "6MiB free") {
			t.Fatalf("%d bytes in 6 MiB: %v", c.size, err)
		}
		assertUnchanged(t, s)
		t.Logf("refused in %v", time.Since(start))
	}
	info, err := s.Import(bomb(t, 4<<20), ImportOptions{NoRender: true})
	if err != nil {
		t.Fatal(err)
	}
	free = 1 << 20
	if _, err := s.RenderTree(info.ID); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("render of 4 MiB in 1 MiB: %v", err)
	}
	if trees, _ := s.ListTrees(); len(trees) != 0 {
		t.Errorf("trees: %v", trees)
	}
}

// TestRealSizeBombs: a gzip of 10 GiB of zeros (10 MiB of stream) and a
// 20 GiB sparse entry, refused quickly against limits of 1 GiB, without
// writing what they expand to.
func TestRealSizeBombs(t *testing.T) {
	s := newStore(t)
	// By its header (the file's size) against the rendered-size limit,
	// then by the stream itself against the uncompressed one.
	for _, l := range []Limits{{MaxRenderedSize: 1 << 30}, {MaxImageSize: 64 << 20, MaxRenderedSize: 1 << 40}} {
		s.Limits = l
		start := time.Now()
		_, err := s.Import(bomb(t, 10<<30), ImportOptions{NoRender: true})
		if !errors.Is(err, archive.ErrTooLarge) {
			t.Fatalf("10 GiB of zeros: %v", err)
		}
		t.Logf("10 GiB gzip bomb refused in %v: %v", time.Since(start), err)
		assertUnchanged(t, s)
	}
	s.Limits = Limits{MaxRenderedSize: 1 << 30}

	var img bytes.Buffer
	m, _ := acibuild.Manifest("example.com/sparse", nil)
	if err := acibuild.Build(&img, m, nil); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 4096)
	sparse := acibuild.InsertEntry(img.Bytes(), acibuild.GNUSparseEntry("rootfs/sparse", 20<<30, [][2]int64{{20<<30 - 4096, 4096}}, data))
	start := time.Now()
	_, err := s.Import(bytes.NewReader(sparse), ImportOptions{})
	if !errors.Is(err, archive.ErrTooLarge) || !strings.Contains(err.Error(), "rootfs/sparse") {
		t.Fatalf("20 GiB sparse entry: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("20 GiB sparse entry refused after %v", d)
	}
	assertUnchanged(t, s)
}
