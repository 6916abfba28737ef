package store

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestDirectFile: whatever the sizes and alignment of the writes, the file
// holds exactly the bytes written, direct or not (t.TempDir's file system
// and /var/tmp's, which may differ in O_DIRECT support).
func TestDirectFile(t *testing.T) {
	dirs := []string{t.TempDir()}
	if d, err := os.MkdirTemp("/var/tmp", "rkt-direct-test-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		dirs = append(dirs, d)
	}
	rnd := rand.New(rand.NewSource(1))
	cases := map[string][]int{
		"empty":            nil,
		"one byte":         {1},
		"block":            {directAlign},
		"blocks and tail":  {sinkBufSize, sinkBufSize, 4097},
		"unaligned middle": {directAlign, 100, directAlign, 7},
	}
	for _, dir := range dirs {
		for name, sizes := range cases {
			t.Run(filepath.Base(dir)+"/"+name, func(t *testing.T) {
				p := filepath.Join(dir, "blob-"+name)
				d, err := createDirect(p)
				if err != nil {
					t.Fatal(err)
				}
				var want []byte
				for _, n := range sizes {
					b := directBuf(sinkBufSize)[:n]
					rnd.Read(b)
					want = append(want, b...)
					if w, err := d.Write(b); err != nil || w != n {
						t.Fatalf("Write(%d bytes) = %d, %v", n, w, err)
					}
				}
				if err := d.Close(); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("file holds %d bytes, not the %d written (or other ones)", len(got), len(want))
				}
			})
		}
	}
}
