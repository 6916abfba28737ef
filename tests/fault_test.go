package tests

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/tests/testutil"
)

// refused checks that fetching, and running, an archive fails the way rkt
// must fail on bad input: exit 254, a one-line error naming the reason,
// nothing listed, nothing left in the store's tmp, and none of the paths
// in mustNotExist created.
func refused(c *testutil.Ctx, aci string, mustNotExist []string, want ...string) {
	c.T.Helper()
	before := len(c.Images())
	c.T.Logf("fetch: %s", c.ExpectFailure(c.Rkt(testutil.Insecure, "fetch", aci), want...))
	c.T.Logf("run:   %s", c.ExpectFailure(c.Run(aci), want...))
	if after := c.Images(); len(after) != before {
		c.T.Errorf("a refused image changed the image list: %d images before, %+v after", before, after)
	}
	for _, p := range mustNotExist {
		if _, err := os.Lstat(p); err == nil {
			c.T.Errorf("a refused archive wrote %s", p)
		}
	}
	if tmp := dirEntries(filepath.Join(c.Dir, "cas", "tmp")); len(tmp) != 0 {
		c.T.Errorf("a refused import left debris in cas/tmp: %q", tmp)
	}
	for _, s := range []string{"embryo", "prepare", "prepared", "run"} {
		if ps := c.PodDirs(s); len(ps) != 0 {
			c.T.Errorf("a refused image left pods in pods/%s: %q", s, ps)
		}
	}
}

// manifestEntry is a valid manifest entry for raw archives.
func manifestEntry(c *testutil.Ctx, name string) acibuild.RawEntry {
	m := testutil.ManifestJSON(c.A.InspectImage(name).Manifest)
	return acibuild.RawManifest(string(m))
}

// TestMaliciousArchives feeds rkt archives that try to write outside the
// rootfs or smuggle device nodes; each must be refused as a whole.
func TestMaliciousArchives(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	// Escapes aim at the test's scratch directory by an absolute path, so
	// the target is known whatever directory rkt extracts into: extra ".."
	// at / stay at /.
	target := c.Path("escaped")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := c.WriteFile("escaped/secret", "host secret")
	up := strings.Repeat("../", 40)
	rel := up + strings.TrimPrefix(target, "/")
	cases := []struct {
		name    string
		entries []acibuild.RawEntry
		victims []string
	}{
		{"dotdot", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawFile("rootfs/"+rel+"/dotdot", "x")},
			[]string{filepath.Join(target, "dotdot")}},
		{"dotdot-inside", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawDir("rootfs/a/"), acibuild.RawFile("rootfs/a/../../escaped-manifest", "x")}, nil},
		{"absolute", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawFile(filepath.Join(target, "absolute"), "x")},
			[]string{filepath.Join(target, "absolute")}},
		{"absolute-rootfs", []acibuild.RawEntry{acibuild.RawDir("/rootfs/"), acibuild.RawFile("/rootfs/"+rel+"/absolute2", "x")},
			[]string{filepath.Join(target, "absolute2")}},
		{"symlink-absolute", []acibuild.RawEntry{acibuild.RawDir("rootfs/"),
			acibuild.RawLink(tar.TypeSymlink, "rootfs/x", target), acibuild.RawFile("rootfs/x/via-symlink", "x")},
			[]string{filepath.Join(target, "via-symlink")}},
		{"symlink-relative", []acibuild.RawEntry{acibuild.RawDir("rootfs/"),
			acibuild.RawLink(tar.TypeSymlink, "rootfs/y", rel), acibuild.RawFile("rootfs/y/via-relative", "x")},
			[]string{filepath.Join(target, "via-relative")}},
		{"symlink-chain", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawDir("rootfs/d/"),
			acibuild.RawLink(tar.TypeSymlink, "rootfs/d/up", "../.."), acibuild.RawLink(tar.TypeSymlink, "rootfs/z", "d/up/"+rel),
			acibuild.RawFile("rootfs/z/via-chain", "x")},
			[]string{filepath.Join(target, "via-chain")}},
		{"hardlink-absolute", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawLink(tar.TypeLink, "rootfs/h", secret)}, nil},
		{"hardlink-dotdot", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawLink(tar.TypeLink, "rootfs/h", "rootfs/"+rel+"/secret")}, nil},
		{"hardlink-outside-rootfs", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawLink(tar.TypeLink, "rootfs/h", "manifest")}, nil},
		{"char-device", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawDir("rootfs/dev/"),
			{Header: tar.Header{Name: "rootfs/dev/mem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1}}}, nil},
		{"block-device", []acibuild.RawEntry{acibuild.RawDir("rootfs/"),
			{Header: tar.Header{Name: "rootfs/sda", Typeflag: tar.TypeBlock, Mode: 0o666, Devmajor: 8, Devminor: 0}}}, nil},
		{"fifo", []acibuild.RawEntry{acibuild.RawDir("rootfs/"),
			{Header: tar.Header{Name: "rootfs/fifo", Typeflag: tar.TypeFifo, Mode: 0o666}}}, nil},
		{"duplicate", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawFile("rootfs/dup", "first"), acibuild.RawFile("rootfs/dup", "second")}, nil},
		{"duplicate-unclean", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawFile("rootfs/dup", "first"), acibuild.RawFile("rootfs/./dup", "second")}, nil},
		{"outside-rootfs", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawFile("other/file", "x")}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c.Sub(t)
			entries := append([]acibuild.RawEntry{manifestEntry(c, "example.com/evil-"+tc.name)}, tc.entries...)
			aci := c.WriteRaw(tc.name+".aci", entries)
			refused(c, aci, tc.victims)
		})
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "host secret" {
		t.Errorf("the host file targeted by hardlinks changed: %q %v", b, err)
	}
	if ents := dirEntries(target); len(ents) != 1 {
		t.Errorf("files appeared in the escape target: %q", ents)
	}
}

// TestBadArchives feeds rkt corrupt, truncated and invalid images.
func TestBadArchives(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	good := c.A.InspectImage("example.com/good")
	plain, err := good.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	good.Gzip = true
	gz, err := good.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), gz...)
	for i := len(flipped) / 2; i < len(flipped)/2+64; i++ {
		flipped[i] ^= 0xff
	}
	rawManifest := func(name, manifest string) []acibuild.RawEntry {
		return []acibuild.RawEntry{
			{Header: tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644}, Data: []byte(manifest)},
			acibuild.RawDir("rootfs/"), acibuild.RawFile("rootfs/f", "x"),
		}
	}
	bytesCases := map[string][]byte{
		"truncated-gzip": gz[:len(gz)/2],
		"corrupt-gzip":   flipped,
		// Cut inside the inspect binary's data: a tar that ends early.
		"truncated-tar": plain[:len(plain)/2],
		"garbage":       bytes.Repeat([]byte("not an image "), 1000),
		"empty":         {},
	}
	for name, b := range bytesCases {
		t.Run(name, func(t *testing.T) { refused(c.Sub(t), c.WriteBytes(name+".aci", b), nil) })
	}
	manifests := map[string]string{
		"manifest-not-json":    `{"acKind": "ImageManifest",`,
		"manifest-wrong-kind":  `{"acKind":"PodManifest","acVersion":"0.8.11","name":"example.com/x"}`,
		"manifest-no-name":     `{"acKind":"ImageManifest","acVersion":"0.8.11"}`,
		"manifest-bad-name":    `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"Not A Valid Name!"}`,
		"manifest-bad-version": `{"acKind":"ImageManifest","acVersion":"zero","name":"example.com/x"}`,
		"manifest-bad-app":     `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/x","app":{"exec":["/x"],"user":"0"}}`,
	}
	for name, m := range manifests {
		t.Run(name, func(t *testing.T) {
			c := c.Sub(t)
			refused(c, c.WriteRaw(name+".aci", rawManifest(name, m)), nil, "manifest")
		})
	}
	t.Run("no-manifest", func(t *testing.T) {
		c := c.Sub(t)
		refused(c, c.WriteRaw("no-manifest.aci", []acibuild.RawEntry{acibuild.RawDir("rootfs/"), acibuild.RawFile("rootfs/f", "x")}), nil, "manifest")
	})
	t.Run("no-rootfs", func(t *testing.T) {
		c := c.Sub(t)
		refused(c, c.WriteRaw("no-rootfs.aci", []acibuild.RawEntry{manifestEntry(c, "example.com/no-rootfs")}), nil, "rootfs")
	})
	// After all that, the store still imports and runs a good image.
	r := c.ExpectOK(c.Run(c.WriteBytes("good.aci", plain), "--exec=/inspect", "--", "--print-msg=still fine"))
	expectLine(t, r, "still fine")
}

// TestPodFaults checks the pod-level faults: a pod already running, a pod
// prepared twice into run, and run-prepared of a pod in the wrong state.
func TestPodFaults(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	uuidFile := c.Path("uuid")
	id := c.Fetch(c.InspectACI("--on-sigterm=0", "--print-msg=ready", "--sleep=120s"))
	uuid := c.MustPrepare("--uuid-file-save="+uuidFile, id)
	if b := readFile(t, uuidFile); string(b) != uuid {
		t.Errorf("prepare --uuid-file-save wrote %q, want %q", b, uuid)
	}
	p := c.Start(testutil.Insecure, "run-prepared", uuid)
	c.WaitState(uuid, "running", 30*time.Second)
	c.ExpectFailure(c.Rkt(testutil.Insecure, "run-prepared", uuid), uuid[:8])
	c.ExpectFailure(c.Rkt("rm", uuid), uuid[:8])
	if st := c.Status(uuid); st.State != "running" {
		t.Errorf("the pod stopped running after refused commands: %+v", st)
	}
	// Stopped once it handles SIGTERM (exiting 0): before that, SIGTERM
	// kills it and 143 is the right status (TestStopAtRandomMoments).
	waitOutput(t, p, "ready")
	c.ExpectOK(c.Rkt("stop", uuid))
	c.ExpectOK(p.Wait(60 * time.Second))
}
