package tests

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/tests/testutil"
)

// setLimits writes a paths configuration lowering the store's limits.
func setLimits(c *testutil.Ctx, image, rendered string) {
	c.T.Helper()
	dir := filepath.Join(c.LocalConfig, "paths.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.T.Fatal(err)
	}
	conf := `{"rktKind":"paths","rktVersion":"v1","image-size-limit":"` + image + `","rendered-size-limit":"` + rendered + `"}`
	if err := os.WriteFile(filepath.Join(dir, "limits.json"), []byte(conf), 0o644); err != nil {
		c.T.Fatal(err)
	}
}

func writeStream(c *testutil.Ctx, name string, r io.Reader) string {
	c.T.Helper()
	p := c.Path(name)
	f, err := os.Create(p)
	if err != nil {
		c.T.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		c.T.Fatal(err)
	}
	return p
}

// TestImageBombs: decompression and sparse bombs are refused against the
// configured limits, with exit 254 naming the image and the limit, and the
// store unchanged; sparse files are rendered sparse.
func TestImageBombs(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	setLimits(c, "64MiB", "1GiB")

	// Small bombs against the lowered limits.
	zeros, err := acibuild.ZeroBomb("example.com/zeros", 128<<20)
	if err != nil {
		t.Fatal(err)
	}
	small := writeStream(c, "zeros-128m.aci", zeros)
	refused(c, small, nil, "zeros-128m.aci", "limit of 64MiB uncompressed")

	// Real-size bombs: 10 GiB of zeros in about 10 MiB of gzip, and a
	// 20 GiB sparse entry.
	zeros, err = acibuild.ZeroBomb("example.com/zeros", 10<<30)
	if err != nil {
		t.Fatal(err)
	}
	big := writeStream(c, "zeros-10g.aci", zeros)
	start := time.Now()
	refused(c, big, nil, "zeros-10g.aci", "rendered-size limit of 1GiB")
	t.Logf("10 GiB bomb refused (fetch and run) in %v", time.Since(start))

	sparse := sparseImage(t, c, "example.com/sparse", 20<<30)
	start = time.Now()
	refused(c, sparse, nil, "sparse.aci", "rootfs/sparse", "rendered-size limit of 1GiB")
	t.Logf("20 GiB sparse entry refused (fetch and run) in %v", time.Since(start))

	// A sparse file under the limit is run, and rendered sparse.
	setLimits(c, "64MiB", "2GiB")
	ok := sparseImage(t, c, "example.com/sparse-ok", 1<<30)
	id := c.Fetch(ok)
	r := c.ExpectOK(c.Run(ok, "--exec=/inspect", "--", "--print-msg=sparse ok"))
	expectLine(t, r, "sparse ok")
	var found bool
	filepath.WalkDir(filepath.Join(c.Dir, "cas", "tree"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Name() != "sparse" {
			return nil
		}
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			found = true
			if st.Size != 1<<30 || st.Blocks*512 > 1<<20 {
				t.Errorf("%s: size %d, %d bytes allocated: not kept sparse", p, st.Size, st.Blocks*512)
			}
		}
		return nil
	})
	if !found {
		t.Errorf("image %s: no rendered sparse file found", id)
	}
}

// sparseImage writes the inspect image with a GNU sparse entry of size
// bytes (8 KiB of data) added to its rootfs.
func sparseImage(t *testing.T, c *testutil.Ctx, name string, size int64) string {
	t.Helper()
	im := c.A.InspectImage(name)
	im.Gzip = false
	b, err := im.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("s"), 8192)
	entry := acibuild.GNUSparseEntry("rootfs/sparse", size, [][2]int64{{0, 4096}, {size - 4096, 4096}}, data)
	return c.WriteBytes(filepath.Base(name)+".aci", acibuild.InsertEntry(b, entry))
}

// TestUnrunnableImagesRefused: images that could never be rendered are
// refused at fetch, with one line naming the entry or dependency.
func TestUnrunnableImagesRefused(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	caps := func(v string) acibuild.RawEntry {
		e := acibuild.RawFile("rootfs/caps", "x")
		e.Header.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": v}
		e.Header.Format = tar.FormatPAX
		return e
	}
	ids := func(uid, gid int) acibuild.RawEntry {
		e := acibuild.RawFile("rootfs/owned", "x")
		e.Header.Uid, e.Header.Gid, e.Header.Format = uid, gid, tar.FormatPAX
		return e
	}
	cases := map[string]struct {
		e    acibuild.RawEntry
		want []string
	}{
		"long-name":      {acibuild.RawFile("rootfs/"+strings.Repeat("n", 5000), "x"), []string{"nnnn", "name of 5007 bytes, longer than 4095"}},
		"long-component": {acibuild.RawFile("rootfs/"+strings.Repeat("c", 300), "x"), []string{"cccc", "component of 300 bytes, longer than 255"}},
		"long-path":      {acibuild.RawFile("rootfs/"+strings.Repeat("p/", 2500)+"f", "x"), []string{"p/p/p", "longer than 4095"}},
		"long-symlink":   {acibuild.RawLink(tar.TypeSymlink, "rootfs/l", "/"+strings.Repeat("s", 5000)), []string{"rootfs/l", "symlink target of 5001 bytes"}},
		"bad-capability": {caps("\x01\x00\x00\x02garbage"), []string{"rootfs/caps", "security.capability"}},
		"uid-2p32-1234":  {ids(1<<32+1234, 0), []string{"rootfs/owned", "uid 4294968530"}},
		"gid-2p40":       {ids(0, 1<<40), []string{"rootfs/owned", "gid 1099511627776"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := c.Sub(t)
			aci := c.WriteRaw(name+".aci", []acibuild.RawEntry{manifestEntry(c, "example.com/"+name), acibuild.RawDir("rootfs/"), tc.e})
			refused(c, aci, nil, tc.want...)
		})
	}
	t.Run("broken-sparse-map", func(t *testing.T) {
		c := c.Sub(t)
		var buf bytes.Buffer
		acibuild.RawEntries(&buf, []acibuild.RawEntry{manifestEntry(c, "example.com/broken-sparse"), acibuild.RawDir("rootfs/")})
		// The map claims 20 GiB of data; the entry holds 4 KiB.
		entry := acibuild.GNUSparseEntry("rootfs/broken", 40<<30, [][2]int64{{0, 4096}, {20 << 30, 20 << 30}}, make([]byte, 4096))
		start := time.Now()
		refused(c, c.WriteBytes("broken-sparse.aci", acibuild.InsertEntry(buf.Bytes(), entry)), nil, "rootfs/broken", "sparse map")
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("broken sparse map refused after %v", d)
		}
	})
	dependent := func(c *testutil.Ctx, name string, deps ...string) string {
		im := c.A.InspectImage(name)
		for _, d := range deps {
			im.Manifest.Dependencies = append(im.Manifest.Dependencies, types.Dependency{ImageName: *types.MustACIdentifier(d)})
		}
		return c.WriteImage(im)
	}
	t.Run("missing-dependency", func(t *testing.T) {
		c := c.Sub(t)
		refused(c, dependent(c, "example.com/needs-missing", "example.com/does-not-exist"), nil, "example.com/does-not-exist")
	})
	t.Run("self-dependency", func(t *testing.T) {
		c := c.Sub(t)
		refused(c, dependent(c, "example.com/self", "example.com/self"), nil, "example.com/self", "itself")
	})
	t.Run("dependency-chain", func(t *testing.T) {
		// A chain whose base is missing is refused; with it, accepted.
		c := c.Sub(t)
		middle := dependent(c, "example.com/middle", "example.com/base")
		refused(c, middle, nil, "dependency example.com/base of example.com/middle")
		c.Fetch(dependent(c, "example.com/base"))
		c.Fetch(middle)
		c.Fetch(dependent(c, "example.com/top", "example.com/middle"))
	})
	// The store still takes a good image after all that.
	r := c.ExpectOK(c.Run(c.InspectACI(), "--exec=/inspect", "--", "--print-msg=still fine"))
	expectLine(t, r, "still fine")
}
