package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/aci/acibuild"
)

func paxEntry(name string, recs map[string]string, mod func(*tar.Header)) acibuild.RawEntry {
	e := acibuild.RawFile(name, "x")
	e.Header.PAXRecords = recs
	e.Header.Format = tar.FormatPAX
	if mod != nil {
		mod(&e.Header)
	}
	return e
}

// capValue builds a vfs_cap_data value of the given revision and size.
func capValue(magic uint32, size int) string {
	b := make([]byte, size)
	b[0], b[1], b[2], b[3] = byte(magic), byte(magic>>8), byte(magic>>16), byte(magic>>24)
	return string(b)
}

// TestRefusedAtValidation: entries the kernel could never take are refused
// by Validate (so at fetch), with one line naming the entry.
func TestRefusedAtValidation(t *testing.T) {
	long := "rootfs/" + strings.Repeat("a/", 2500)
	cases := map[string]struct {
		e    acibuild.RawEntry
		want string
	}{
		"5000-byte name":   {acibuild.RawFile(long[:len(long)-1], "x"), "longer than 4095"},
		"300-byte comp":    {acibuild.RawFile("rootfs/"+strings.Repeat("b", 300), "x"), "path component of 300 bytes"},
		"long symlink":     {acibuild.RawLink(tar.TypeSymlink, "rootfs/l", "/"+strings.Repeat("c", 4096)), "symlink target of 4097 bytes"},
		"empty symlink":    {acibuild.RawLink(tar.TypeSymlink, "rootfs/l", ""), "empty symlink target"},
		"caps too short":   {paxEntry("rootfs/f", map[string]string{"SCHILY.xattr.security.capability": "ab"}, nil), "too short"},
		"caps bad size":    {paxEntry("rootfs/f", map[string]string{"SCHILY.xattr.security.capability": capValue(0x02000000, 12)}, nil), "revision 2 wants 20"},
		"caps bad rev":     {paxEntry("rootfs/f", map[string]string{"SCHILY.xattr.security.capability": capValue(0x07000000, 20)}, nil), "unknown revision"},
		"caps bad flags":   {paxEntry("rootfs/f", map[string]string{"SCHILY.xattr.security.capability": capValue(0x02000010, 20)}, nil), "unknown flags"},
		"xattr namespace":  {paxEntry("rootfs/f", map[string]string{"SCHILY.xattr.bogus.x": "1"}, nil), "namespace"},
		"xattr too big":    {paxEntry("rootfs/f", map[string]string{"SCHILY.xattr.user.x": strings.Repeat("v", 1<<16+1)}, nil), "value of 65537 bytes"},
		"uid 2^32+1234":    {paxEntry("rootfs/f", nil, func(h *tar.Header) { h.Uid = 1<<32 + 1234 }), "uid 4294968530 out of range"},
		"gid 2^40":         {paxEntry("rootfs/f", nil, func(h *tar.Header) { h.Gid = 1 << 40 }), "gid 1099511627776 out of range"},
		"uid 2^32-1":       {paxEntry("rootfs/f", nil, func(h *tar.Header) { h.Uid = 1<<32 - 1 }), "uid 4294967295 out of range"},
		"gnu base-256 uid": {paxEntry("rootfs/f", nil, func(h *tar.Header) { h.Format = tar.FormatGNU; h.Uid = 1 << 33 }), "uid 8589934592 out of range"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Validate(bytes.NewReader(image(t, c.e)))
			if !errors.Is(err, ErrUnsafeEntry) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrUnsafeEntry with %q", err, c.want)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 400 {
				t.Errorf("error is not one short line (%d bytes): %q", len(msg), msg)
			}
		})
	}
	// What the kernel does take still passes.
	ok := image(t,
		acibuild.RawFile("rootfs/"+strings.Repeat("d", 255), "x"),
		acibuild.RawLink(tar.TypeSymlink, "rootfs/l", "/"+strings.Repeat("e", 4094)),
		paxEntry("rootfs/caps", map[string]string{"SCHILY.xattr.security.capability": capValue(0x02000001, 20), "SCHILY.xattr.user.a": "b"}, func(h *tar.Header) { h.Uid = 1<<32 - 2 }),
	)
	if _, err := Validate(bytes.NewReader(ok)); err != nil {
		t.Fatalf("valid image refused: %v", err)
	}
}

func TestRenderedSizeLimit(t *testing.T) {
	img := image(t, acibuild.RawFile("rootfs/a", strings.Repeat("a", 600)), acibuild.RawFile("rootfs/b", strings.Repeat("b", 600)),
		acibuild.RawLink(tar.TypeLink, "rootfs/c", "rootfs/a"))
	v := NewValidator()
	limit := int64(1200 + len(goodManifest)) // the manifest is rendered too
	v.MaxRenderedSize = limit
	if _, err := v.Scan(bytes.NewReader(img), nil); err != nil || v.RenderedSize() != limit {
		t.Fatalf("at the limit: %v, size %d (hardlinks count once)", err, v.RenderedSize())
	}
	v = NewValidator()
	v.MaxRenderedSize = limit - 1
	_, err := v.Scan(bytes.NewReader(img), nil)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `"rootfs/b"`) || !strings.Contains(err.Error(), fmt.Sprint(limit-1, " bytes")) {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestSparse(t *testing.T) {
	const size = 1 << 30 // 1 GiB of which 8 KiB is data
	data := bytes.Repeat([]byte("d"), 8192)
	good := acibuild.InsertEntry(image(t), acibuild.GNUSparseEntry("rootfs/sparse", size, [][2]int64{{0, 4096}, {size - 4096, 4096}}, data))
	t.Run("kept sparse", func(t *testing.T) {
		start := time.Now()
		dst, _, err := extractFrom(t, good)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("1 GiB sparse file extracted in %v", time.Since(start))
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dst, "rootfs/sparse"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Size != size || st.Blocks*512 > 1<<20 {
			t.Fatalf("size %d, %d bytes allocated: want %d, sparse", st.Size, st.Blocks*512, size)
		}
		f, err := os.Open(filepath.Join(dst, "rootfs/sparse"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 4097)
		f.ReadAt(b, 0)
		if !bytes.Equal(b[:4096], data[:4096]) || b[4096] != 0 {
			t.Fatal("content differs at the start")
		}
		f.ReadAt(b, size-4097)
		if !bytes.Equal(b[1:], data[4096:]) || b[0] != 0 {
			t.Fatal("content differs at the end")
		}
	})
	broken := map[string][]byte{
		"map claims more": acibuild.InsertEntry(image(t), acibuild.GNUSparseEntry("rootfs/s", 40<<30, [][2]int64{{0, 4096}, {20 << 30, 4096}, {40<<30 - 1<<20, 1 << 20}}, data)),
		"map claims less": acibuild.InsertEntry(image(t), acibuild.GNUSparseEntry("rootfs/s", 40<<30, [][2]int64{{0, 4096}}, data)),
	}
	var frags [][2]int64
	for i := range 30 { // extension blocks
		frags = append(frags, [2]int64{int64(i) << 30, 512})
	}
	broken["extended map claims more"] = acibuild.InsertEntry(image(t), acibuild.GNUSparseEntry("rootfs/s", 40<<30, frags, data))
	for name, img := range broken {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Validate(bytes.NewReader(img))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"rootfs/s": sparse map describes`) {
				t.Fatalf("got %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("found after %v: should be before reading the body", d)
			}
		})
	}
	frags = frags[:16]
	okExt := acibuild.InsertEntry(image(t), acibuild.GNUSparseEntry("rootfs/s", 40<<30, frags, bytes.Repeat([]byte("e"), 16*512)))
	if _, err := Validate(bytes.NewReader(okExt)); err != nil {
		t.Fatalf("sparse entry with extension blocks refused: %v", err)
	}
	v := NewValidator()
	v.MaxRenderedSize = 20 << 30
	if _, err := v.Scan(bytes.NewReader(okExt), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("40 GiB sparse entry under a 20 GiB limit: %v", err)
	}
}
