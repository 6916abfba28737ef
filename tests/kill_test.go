package tests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/tests/testutil"
)

// bigFiles is the rootfs of a base image that takes rkt a while to render
// or copy: many files, so that a kill lands in the middle.
var bigFiles = sync.OnceValue(func() []string {
	var names []string
	for i := 0; i < 2000; i++ {
		names = append(names, fmt.Sprintf("data/%02d/file-%04d", i%50, i))
	}
	return names
})

const bigFileSize = 8 << 10

func fillBig(im *testutil.Image) {
	data := make([]byte, bigFileSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, n := range bigFiles() {
		im.AddFile(n, string(data), 0o644)
	}
	im.AddFile("data/last", "the last file", 0o644)
}

// warmStage1 runs one pod so that the stage1 is imported and rendered
// already, and a later kill hits the work on the test's image.
func warmStage1(c *testutil.Ctx) {
	c.T.Helper()
	uuid := c.MustPrepare(c.InspectACI())
	c.ExpectOK(c.Rkt("rm", uuid))
}

// expectCleanAfterGC runs both gcs and checks that the debris of a killed
// rkt is gone: no pod in a transient state, nothing in the store's tmp, no
// mount under --dir.
func expectCleanAfterGC(c *testutil.Ctx) {
	c.T.Helper()
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	c.ExpectOK(c.Rkt("image", "gc"))
	for _, s := range []string{"embryo", "prepare", "garbage", "exited-garbage"} {
		if ps := c.PodDirs(s); len(ps) != 0 {
			c.T.Errorf("gc left the debris of a killed rkt in pods/%s: %q", s, ps)
		}
	}
	if tmp := dirEntries(filepath.Join(c.Dir, "cas", "tmp")); len(tmp) != 0 {
		c.T.Errorf("gc and image gc left the debris of a killed rkt in cas/tmp: %q", tmp)
	}
	if ms := testutil.MountsUnder(c.Dir); len(ms) != 0 {
		c.T.Errorf("mounts left under --dir: %q", ms)
	}
}

// TestKillDuringFetch kills rkt while it imports an image read from a FIFO
// (so the kill lands mid-import for certain): the image must not be listed,
// a later fetch must work, and gc must remove the debris.
func TestKillDuringFetch(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	im := c.A.InspectImage("example.com/killed-fetch")
	fillBig(im)
	b, err := im.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	fifo := c.Path("image.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p := c.Start(testutil.Insecure, "fetch", fifo)
	// A non-blocking open for writing fails until rkt has opened the FIFO
	// for reading.
	var f *os.File
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err = os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			break
		}
		if p.Exited() {
			t.Fatalf("rkt fetch of a FIFO ended before reading it: %v", p.Wait(0))
		}
		if time.Now().After(deadline) {
			t.Fatalf("rkt never opened the FIFO: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Half the archive: the write returns once rkt has read all but a
	// pipe buffer of it, so rkt is in the middle of the import.
	f.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := f.Write(b[:len(b)/2]); err != nil {
		t.Fatalf("feeding rkt half an image: %v (rkt: %v)", err, p.Exited())
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := p.Wait(10 * time.Second)
	f.Close()
	if r.Code != 128+int(syscall.SIGKILL) {
		t.Fatalf("rkt was not killed mid-import: %v", r)
	}
	for _, e := range c.Images() {
		if strings.HasPrefix(e.Name, "example.com/killed-fetch") {
			t.Errorf("a half-imported image is listed: %+v", e)
		}
	}
	id := c.Fetch(c.WriteBytes("whole.aci", b))
	if id != imageID(b) {
		t.Errorf("fetch after the kill: ID %s, want %s", id, imageID(b))
	}
	r = c.ExpectOK(c.Run(id, "--exec=/inspect", "--", "--read-file=/data/last"))
	expectLine(t, r, "<<<the last file>>>")
	expectCleanAfterGC(c)
}

// killWhenAppears starts rkt with args and SIGKILLs it as soon as one of
// dirs gains an entry that was not there before. It returns false when rkt
// finished first.
func killWhenAppears(c *testutil.Ctx, dirs []string, args ...string) bool {
	c.T.Helper()
	before := map[string]bool{}
	for _, d := range dirs {
		for _, e := range dirEntries(d) {
			before[filepath.Join(d, e)] = true
		}
	}
	p := c.Start(args...)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, d := range dirs {
			for _, e := range dirEntries(d) {
				if !before[filepath.Join(d, e)] {
					p.Signal(syscall.SIGKILL)
					r := p.Wait(10 * time.Second)
					return r.Code == 128+int(syscall.SIGKILL)
				}
			}
		}
		if p.Exited() {
			r := p.Wait(0)
			if r.Code != 0 {
				c.T.Fatalf("rkt failed before it could be killed: %v", r)
			}
			return false
		}
		time.Sleep(time.Millisecond)
	}
	c.T.Fatalf("rkt %v: nothing appeared in %q within a minute", args, dirs)
	return false
}

// layeredBig fetches a big base image and a small app image depending on
// it, so that rendering the app's tree is separate from importing.
func layeredBig(c *testutil.Ctx) string {
	c.T.Helper()
	base := c.A.InspectImage("example.com/big-base")
	base.Manifest.App = nil
	base.Files = nil
	fillBig(base)
	baseID := c.Fetch(c.WriteImage(base))
	app := c.A.InspectImage("example.com/big-app")
	h, err := types.NewHash(baseID)
	if err != nil {
		c.T.Fatal(err)
	}
	app.Manifest.Dependencies = types.Dependencies{{ImageName: base.Manifest.Name, ImageID: h}}
	return c.Fetch(c.WriteImage(app))
}

// TestKillDuringRender kills `rkt prepare` while it renders an image's
// tree: no pod may be shown as prepared, no half tree may be used, and the
// next prepare must give a complete rootfs.
func TestKillDuringRender(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	warmStage1(c)
	id := layeredBig(c)
	casTmp := filepath.Join(c.Dir, "cas", "tmp")
	if err := os.MkdirAll(casTmp, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	killed := killWhenAppears(c, []string{casTmp}, testutil.Insecure, "prepare", "--stage1-path="+c.Stage1().ACI, id)
	if !killed {
		t.Skip("prepare rendered the tree before the kill could land")
	}
	for _, p := range c.List() {
		if p.State == "prepared" {
			t.Errorf("a pod killed while rendering is shown as prepared: %+v", p)
		}
	}
	if ps := c.PodDirs("prepared"); len(ps) != 0 {
		t.Errorf("a pod killed while rendering is in pods/prepared: %q", ps)
	}
	uuid := c.MustPrepare(id, "--exec=/inspect", "--", "--read-file=/data/last", "--stat-file=/"+bigFiles()[len(bigFiles())-1])
	r := c.ExpectOK(c.Rkt(testutil.Insecure, "run-prepared", uuid))
	expectLine(t, r, "<<<the last file>>>")
	if !strings.Contains(r.Stdout, fmt.Sprintf("size=%d", bigFileSize)) {
		t.Errorf("the rendered tree is incomplete after a killed render: %v", r)
	}
	expectCleanAfterGC(c)
}

// TestKillDuringPrepare kills `rkt prepare --no-overlay` while it copies a
// big rootfs into the pod (state prepare): the pod must never show as
// prepared and gc must remove it.
func TestKillDuringPrepare(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	warmStage1(c)
	im := c.A.InspectImage("example.com/big-prepare")
	fillBig(im)
	id := c.Fetch(c.WriteImage(im))
	// Render once so that the kill hits the copy into the pod.
	c.ExpectOK(c.Rkt("rm", c.MustPrepare(id)))
	killed := killWhenAppears(c, []string{filepath.Join(c.Dir, "pods", "prepare")},
		testutil.Insecure, "prepare", "--no-overlay", "--stage1-path="+c.Stage1().ACI, id)
	if !killed {
		t.Skip("prepare left the prepare state before the kill could land")
	}
	for _, p := range c.List() {
		if p.State == "prepared" {
			t.Errorf("a pod killed while preparing is shown as prepared: %+v", p)
		}
	}
	if ps := c.PodDirs("prepared"); len(ps) != 0 {
		t.Errorf("a pod killed while preparing is in pods/prepared: %q", ps)
	}
	expectCleanAfterGC(c)
	if left := c.List(); len(left) != 0 {
		t.Errorf("gc left pods: %+v", left)
	}
	r := c.ExpectOK(c.Run("--no-overlay", id, "--exec=/inspect", "--", "--read-file=/data/last"))
	expectLine(t, r, "<<<the last file>>>")
}

// TestCrashDebris lays out by hand what a rkt killed at the worst moments
// leaves (an embryo, which lives for microseconds and cannot be hit by a
// kill from outside, and an unlocked prepare): list must not call them
// prepared and gc must remove them.
func TestCrashDebris(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	warmStage1(c) // rkt lays out --dir as it does on first use
	debris := map[string]string{
		"embryo":  "0badc0de-0000-4000-8000-000000000001",
		"prepare": "0badc0de-0000-4000-8000-000000000002",
	}
	for state, uuid := range debris {
		dir := filepath.Join(c.Dir, "pods", state, uuid)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if state == "prepare" {
			// A prepare killed after writing the manifest.
			if err := os.WriteFile(filepath.Join(dir, "pod"), []byte(`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[]}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range c.List() {
		if p.State == "prepared" || p.State == "running" {
			t.Errorf("crash debris listed as %s: %+v", p.State, p)
		}
	}
	c.ExpectFailure(c.Rkt(testutil.Insecure, "run-prepared", debris["prepare"]), debris["prepare"][:8])
	expectCleanAfterGC(c)
	if left := c.List(); len(left) != 0 {
		t.Errorf("gc left pods: %+v", left)
	}
}
