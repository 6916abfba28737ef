package tests

// Upgrade in place from rkt 1.30 (issue 13), against the originals in
// ../shared/fixtures/rkt-1.30 (beside the repository): the data directory
// rkt 1.30 left (three images, a prepared pod, an exited pod), its binary
// and its fly stage1. rkt 1.30's fly pods leave recursive *shared* binds
// of /proc, /sys and /dev: every test that runs one does so in a private
// mount namespace of its own (privateMountNS).

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/common/mountinfo"
	"github.com/rktng/rkt/tests/testutil"
)

// What the fixture's store holds (its README).
const (
	r130Prepared = "a6845bb4-ad5a-4f23-83b4-6033bde24394"
	r130Exited   = "e37d1666-6a07-42fa-a75f-0c61fe4f7a82"
	r130BB64     = "sha512-408e3cd51b83fb82584a2267a2eaef3b1215022bee25197482665ce51f0da3ef"
	r130BBShort  = "sha512-408e3cd51b83fb82584a2267a2eaef3b"
	r130Fly      = "coreos.com/rkt/stage1-fly:1.30.0"
)

// fixtureDir is ../shared/fixtures/rkt-1.30 relative to the repository
// (for a git worktree, also relative to its main checkout; RKT_TEST_SHARED
// names another shared directory), or the test is skipped.
func fixtureDir(t *testing.T) string {
	t.Helper()
	a := testutil.Build(t)
	roots := []string{filepath.Join(a.Root, "..", "shared")}
	if out, err := exec.Command("git", "-C", a.Root, "rev-parse", "--path-format=absolute", "--git-common-dir").Output(); err == nil {
		roots = append(roots, filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "..", "shared"))
	}
	if env := os.Getenv("RKT_TEST_SHARED"); env != "" {
		roots = []string{env}
	}
	var missing error
	for _, r := range roots {
		d := filepath.Join(r, "fixtures", "rkt-1.30")
		missing = nil
		for _, f := range []string{"rkt.xz", "stage1-fly.aci", "store.tar.xz"} {
			if _, err := os.Stat(filepath.Join(d, f)); err != nil {
				missing = err
				break
			}
		}
		if missing == nil {
			return d
		}
	}
	t.Skipf("needs the rkt 1.30 fixtures in ../shared/fixtures/rkt-1.30 beside the repository: %v", missing)
	return ""
}

// extractStore unpacks the data directory rkt 1.30 left into c.Dir.
func extractStore(c *testutil.Ctx, fixture string) {
	c.T.Helper()
	c.RequireTool("xz")
	out, err := exec.Command("tar", "-xJf", filepath.Join(fixture, "store.tar.xz"), "-C", c.Dir, "--strip-components=1").CombinedOutput()
	if err != nil {
		c.T.Fatalf("extracting rkt 1.30's store: %v\n%s", err, out)
	}
}

// rkt130 returns a Ctx that runs rkt 1.30's binary on c's directories.
func rkt130(c *testutil.Ctx, fixture string) *testutil.Ctx {
	c.T.Helper()
	bin := c.Path("rkt-1.30")
	if _, err := os.Stat(bin); err != nil {
		out, err := exec.Command("sh", "-c", `xz -dc "$0" >"$1" && chmod 0755 "$1"`, filepath.Join(fixture, "rkt.xz"), bin).CombinedOutput()
		if err != nil {
			c.T.Fatalf("unpacking rkt 1.30: %v\n%s", err, out)
		}
	}
	old := *c
	a := *c.A
	a.Rkt = bin
	old.A = &a
	return &old
}

// privateMountNS moves the test's goroutine (locked to its thread, which
// dies with it) into a mount namespace of its own, private from the host's
// and shared inside like a systemd host's. The rkt processes the test
// starts are forked from this thread and inherit it; the Ctx cleanup's
// mount check (/proc/thread-self) runs here too. Call it before
// testutil.New.
func privateMountNS(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Skipf("needs a mount namespace of its own: unshare: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("making / private: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		t.Fatalf("making / shared: %v", err)
	}
}

// mountsOutside lists this namespace's mounts of /proc, /sys and /dev,
// which rkt 1.30's fly binds into its pods: a gc that unmounted those
// shared binds without making them private first takes the originals
// (/sys/fs/cgroup, /dev/pts...) along. (Other mounts come and go with the
// other tests running meanwhile.)
func mountsOutside(t *testing.T, dir string) []string {
	infos, err := mountinfo.Read()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range infos {
		for _, top := range []string{"/proc", "/sys", "/dev"} {
			if in.MountPoint == top || strings.HasPrefix(in.MountPoint, top+"/") {
				out = append(out, in.MountPoint)
			}
		}
	}
	sort.Strings(out)
	return out
}

func checkHostMountsKept(t *testing.T, before []string, dir string) {
	t.Helper()
	after := map[string]bool{}
	for _, m := range mountsOutside(t, dir) {
		after[m] = true
	}
	for _, m := range before {
		if !after[m] {
			t.Errorf("mount %s outside --dir vanished (an unmount propagated from a pod)", m)
		}
	}
}

func TestUpgradeStoreAndPods(t *testing.T) {
	fixture := fixtureDir(t)
	privateMountNS(t)
	c := testutil.New(t)
	c.RequireFlavor("fly") // the store and rkt 1.30's pods do not depend on the stage1 under test
	extractStore(c, fixture)
	cas := filepath.Join(c.Dir, "cas")
	oldFiles := sums(t, filepath.Join(cas, "db"), filepath.Join(cas, "blob"), filepath.Join(cas, "imageManifest"))
	before := mountsOutside(t, c.Dir)

	// A dry run reports and writes nothing.
	r := c.ExpectOK(c.Rkt("image", "migrate", "--dry-run"))
	for _, want := range []string{"would migrate 3 of 3 images", "example.com/bb", "example.com/hello", r130Fly[:len(r130Fly)-7]} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("dry run does not mention %q: %v", want, r)
		}
	}
	if _, err := os.Stat(filepath.Join(cas, "db", "ql.db.migrated")); err == nil {
		t.Errorf("dry run recorded a migration")
	}

	// The first command that opens the store migrates it and says so.
	r = c.ExpectOK(c.Rkt("image", "list"))
	if !strings.Contains(r.Stderr, "migrated 3 of 3 images") || !strings.Contains(r.Stderr, "rkt image gc") {
		t.Errorf("migration not reported on stderr: %v", r)
	}
	imgs := c.Images()
	if len(imgs) != 3 {
		t.Fatalf("want rkt 1.30's 3 images, got %+v", imgs)
	}
	byName := map[string]testutil.ImageEntry{}
	for _, im := range imgs {
		byName[im.Name] = im
	}
	bb, ok := byName["example.com/bb:1.0.0"]
	if !ok || !strings.HasPrefix(bb.ID, r130BB64) || bb.Size != 1996800 {
		t.Errorf("bb as listed: %+v (want ID under %s, rkt 1.30's size 1996800)", bb, r130BB64)
	}
	// rkt 1.30 imported them on 2026-12-01 at 22:32 UTC: the time is kept.
	for _, im := range imgs {
		if got := importDay(im.ImportTime); got != "2026-12-01" {
			t.Errorf("image %s: import time %d (%s), want rkt 1.30's (2026-12-01)", im.Name, im.ImportTime, got)
		}
	}
	for p, sum := range oldFiles {
		if got := fileSum(p); got != sum {
			t.Errorf("rkt 1.30's %s changed by the migration", p)
		}
	}

	// Runnable by name, by the old 64-digit key and by the old short ID.
	for _, img := range []string{"example.com/bb:1.0.0", r130BB64, r130BBShort} {
		r := c.ExpectOK(c.Run(img, "--exec", "/bin/echo", "--", "ran-"+img))
		if !strings.Contains(r.Stdout, "ran-"+img) {
			t.Errorf("run %s: %v", img, r)
		}
	}

	// rkt 1.30's pods: listed with their states, inspectable.
	states := map[string]string{}
	for _, p := range c.List() {
		states[p.Name] = p.State
	}
	if states[r130Prepared] != "prepared" || states[r130Exited] != "exited" {
		t.Errorf("rkt 1.30's pods listed as %v", states)
	}
	if p := c.Status(r130Exited); p.State != "exited" || len(p.AppNames) != 1 || p.AppNames[0] != "bb" {
		t.Errorf("status of rkt 1.30's exited pod: %+v", p)
	}
	r = c.ExpectOK(c.Rkt("cat-manifest", r130Prepared))
	var pm schema.PodManifest
	if err := json.Unmarshal([]byte(r.Stdout), &pm); err != nil || len(pm.Apps) != 1 || pm.Apps[0].Image.ID.String() != r130BB64 {
		t.Errorf("cat-manifest of rkt 1.30's prepared pod: %v, %v", err, r)
	}

	// Its prepared pod runs (with rkt 1.30's fly, which it was prepared with).
	r = c.ExpectOK(c.Rkt("run-prepared", r130Prepared))
	if !strings.Contains(r.Stdout, "prepared-by-rkt130") {
		t.Errorf("run-prepared of rkt 1.30's pod: %v", r)
	}

	// A pod rkt 1.30 left running: our rkt lists, waits for, enters and stops it.
	old := rkt130(c, fixture)
	uuidFile := c.Path("uuid-130")
	p := old.Start(testutil.Insecure, "run", "--stage1-name="+r130Fly, "--uuid-file-save="+uuidFile,
		"example.com/bb:1.0.0", "--exec", "/bin/sleep", "--", "60")
	uuid := waitUUIDFile(t, uuidFile)
	c.ExpectOK(c.Rkt("status", "--wait-ready=20s", uuid))
	if st := c.WaitState(uuid, "running", 20*time.Second); st.State != "running" {
		t.Fatalf("rkt 1.30's pod: %+v", st)
	}
	r = c.ExpectOK(c.Rkt("enter", uuid, "/bin/echo", "entered-130-pod"))
	if !strings.Contains(r.Stdout, "entered-130-pod") {
		t.Errorf("enter into rkt 1.30's pod: %v", r)
	}
	c.ExpectOK(c.Rkt("stop", uuid))
	p.Wait(20 * time.Second)
	c.WaitState(uuid, "exited", 20*time.Second)

	// gc removes rkt 1.30's exited pods, leaving no mounts, and the
	// namespace's own mounts in place.
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	for _, u := range []string{r130Exited, r130Prepared, uuid} {
		if d := c.PodDir(u); d != "" {
			t.Errorf("pod %s still at %s after gc", u, d)
		}
	}
	if ms := testutil.MountsUnder(c.Dir); len(ms) > 0 {
		t.Errorf("mounts left under --dir after gc: %q", ms)
	}
	checkHostMountsKept(t, before, c.Dir)

	// image gc removes rkt 1.30's files (kept until now for a rollback);
	// with a grace period longer than the fixture's age the images stay,
	// runnable. (The default 24 h would depend on the day the test runs:
	// rkt 1.30 last used them when the fixture was made.)
	r = c.ExpectOK(c.Rkt("image", "gc", "--grace-period="+(sinceOldestUse(imgs)+24*time.Hour).String()))
	if !strings.Contains(r.Stdout, "rkt 1.30's image store") {
		t.Errorf("image gc does not report removing rkt 1.30's files: %v", r)
	}
	for _, gone := range []string{"db/ql.db", "imageManifest", "imagelocks", "blob/sha512/40/" + r130BB64} {
		if _, err := os.Stat(filepath.Join(cas, gone)); err == nil {
			t.Errorf("rkt 1.30's %s still there after image gc", gone)
		}
	}
	left := map[string]bool{}
	for _, im := range c.Images() {
		left[im.Name] = true
	}
	for name := range byName {
		if !left[name] {
			t.Errorf("image %s gone after image gc", name)
		}
	}
	c.ExpectOK(c.Run(r130BBShort, "--exec", "/bin/true"))

	// A grace period shorter than the fixture's age removes the image only
	// rkt 1.30 used (hello) and keeps the one our runs above marked used.
	c.ExpectOK(c.Rkt("image", "gc", "--grace-period=1h"))
	left = map[string]bool{}
	for _, im := range c.Images() {
		left[im.Name] = true
	}
	if left["example.com/hello:1.0.0"] || !left["example.com/bb:1.0.0"] {
		t.Errorf("after image gc --grace-period=1h, images left: %v (want bb, not hello)", left)
	}
}

// sinceOldestUse is how long ago the least recently used of imgs was last
// used (or imported, if never used).
func sinceOldestUse(imgs []testutil.ImageEntry) time.Duration {
	var oldest int64
	for _, im := range imgs {
		t := im.LastUsedTime
		if t == 0 {
			t = im.ImportTime
		}
		if oldest == 0 || t < oldest {
			oldest = t
		}
	}
	return time.Since(time.Unix(0, oldest))
}

func importDay(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02")
}

// TestUpgradeMigrationKilled SIGKILLs the migration at each of its steps:
// rkt 1.30's store stays as it was, and the next command finishes it.
func TestUpgradeMigrationKilled(t *testing.T) {
	fixture := fixtureDir(t)
	c0 := testutil.New(t)
	c0.RequireFlavor("fly")
	for _, step := range []string{"locked", "read", "image-1", "image-2", "image-3", "remotes", "done"} {
		t.Run(step, func(t *testing.T) {
			c := testutil.New(t)
			extractStore(c, fixture)
			cas := filepath.Join(c.Dir, "cas")
			oldFiles := sums(t, filepath.Join(cas, "db"), filepath.Join(cas, "blob"), filepath.Join(cas, "imageManifest"))
			r := c.RktWith(testutil.Opts{Env: []string{"RKT_TEST_MIGRATE_KILL_AT=" + step}}, "image", "list")
			if r.Code != 128+9 {
				t.Fatalf("want the migration killed at %s (exit 137), got %v", step, r)
			}
			for p, sum := range oldFiles {
				if got := fileSum(p); got != sum {
					t.Errorf("rkt 1.30's %s changed by a killed migration", p)
				}
			}
			// rkt 1.30 still reads its store.
			r = rkt130(c, fixture).ExpectOK(rkt130(c, fixture).Rkt("image", "list", "--no-legend"))
			if n := len(r.Lines()); n != 3 {
				t.Errorf("rkt 1.30 lists %d images after the kill: %v", n, r)
			}
			r = c.ExpectOK(c.Rkt("image", "list", "--no-legend"))
			if n := len(r.Lines()); n != 3 {
				t.Errorf("after the rerun: %d images: %v", n, r)
			}
			if step != "done" && !strings.Contains(r.Stderr, "migrated 3 of 3") {
				t.Errorf("the rerun did not finish the migration: %v", r)
			}
			if _, err := os.Stat(filepath.Join(cas, "db", "ql.db.migrated")); err != nil {
				t.Errorf("migration not recorded after the rerun: %v", err)
			}
			c.ExpectOK(c.Rkt(testutil.Insecure, "image", "cat-manifest", r130BBShort))
		})
	}
}

// TestUpgradeOurPodUnderRkt130Fly runs our stage0's pods with rkt 1.30's
// own fly stage1 (--stage1-path): run, exit status, enter, stop, gc.
func TestUpgradeOurPodUnderRkt130Fly(t *testing.T) {
	fixture := fixtureDir(t)
	privateMountNS(t)
	c := testutil.New(t)
	c.RequireFlavor("fly")
	extractStore(c, fixture)
	before := mountsOutside(t, c.Dir)
	fly := "--stage1-path=" + filepath.Join(fixture, "stage1-fly.aci")

	r := c.Expect(c.Rkt(testutil.Insecure, "run", fly, "example.com/bb:1.0.0", "--exec", "/bin/sh", "--", "-c", "echo under-130-fly; exit 3"), 3)
	if !strings.Contains(r.Stdout, "under-130-fly") {
		t.Errorf("our pod under rkt 1.30's fly: %v", r)
	}
	uuidFile := c.Path("uuid")
	p := c.Start(testutil.Insecure, "run", fly, "--uuid-file-save="+uuidFile, "example.com/bb:1.0.0", "--exec", "/bin/sleep", "--", "60")
	uuid := waitUUIDFile(t, uuidFile)
	c.ExpectOK(c.Rkt("status", "--wait-ready=20s", uuid))
	r = c.ExpectOK(c.Rkt("enter", uuid, "/bin/echo", "entered"))
	if !strings.Contains(r.Stdout, "entered") {
		t.Errorf("enter: %v", r)
	}
	c.ExpectOK(c.Rkt("stop", uuid))
	p.Wait(20 * time.Second)
	c.WaitState(uuid, "exited", 20*time.Second)
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	if d := c.PodDir(uuid); d != "" {
		t.Errorf("pod still at %s after gc", d)
	}
	if ms := testutil.MountsUnder(c.Dir); len(ms) > 0 {
		t.Errorf("mounts left under --dir after gc: %q", ms)
	}
	checkHostMountsKept(t, before, c.Dir)
}

// TestUpgradeOurStage1UnderRkt130 runs the stage1 under test (fly or
// host) with rkt 1.30's stage0: run, status --wait-ready, enter, stop, gc.
func TestUpgradeOurStage1UnderRkt130(t *testing.T) {
	fixture := fixtureDir(t)
	privateMountNS(t)
	c := testutil.New(t)
	extractStore(c, fixture)
	old := rkt130(c, fixture)
	ours := "--stage1-path=" + c.Stage1().ACI

	r := old.Expect(old.Rkt(testutil.Insecure, "run", ours, "example.com/bb:1.0.0", "--exec", "/bin/echo", "--", "ours-under-130"), 0)
	if !strings.Contains(r.Stdout, "ours-under-130") {
		t.Errorf("our %s stage1 under rkt 1.30: %v", c.Stage1().Flavor, r)
	}
	uuidFile := c.Path("uuid")
	p := old.Start(testutil.Insecure, "run", ours, "--uuid-file-save="+uuidFile, "example.com/bb:1.0.0", "--exec", "/bin/sleep", "--", "60")
	uuid := waitUUIDFile(t, uuidFile)
	r = old.ExpectOK(old.Rkt("status", "--wait-ready=30s", uuid))
	if !strings.Contains(r.Stdout, "state=running") {
		t.Errorf("rkt 1.30 status --wait-ready: %v", r)
	}
	r = old.ExpectOK(old.Rkt("enter", uuid, "/bin/echo", "entered-by-130"))
	if !strings.Contains(r.Stdout, "entered-by-130") {
		t.Errorf("rkt 1.30 enter: %v", r)
	}
	old.ExpectOK(old.Rkt("stop", uuid))
	if res := p.Wait(30 * time.Second); res.Err != nil {
		t.Errorf("pod after rkt 1.30's stop: %v", res)
	}
	r = old.ExpectOK(old.Rkt("status", uuid))
	if !strings.Contains(r.Stdout, "state=exited") {
		t.Errorf("rkt 1.30 status after stop: %v", r)
	}
	old.ExpectOK(old.Rkt("gc", "--grace-period=0s"))
	if d := c.PodDir(uuid); d != "" {
		t.Errorf("pod still at %s after rkt 1.30's gc", d)
	}
	if ms := testutil.MountsUnder(c.Dir); len(ms) > 0 {
		t.Errorf("mounts left under --dir after rkt 1.30's gc: %q", ms)
		testutil.ForceUnmountUnder(c.Dir)
	}
}

// TestStage1InterfaceVersionRefused: a stage1 declaring an interface
// version we do not speak is refused, naming it.
func TestStage1InterfaceVersionRefused(t *testing.T) {
	c := testutil.New(t)
	c.RequireFlavor("fly")
	var m schema.ImageManifest
	mb := `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/stage1-future",
		"labels":[{"name":"os","value":"linux"},{"name":"arch","value":"` + runtime.GOARCH + `"}],
		"annotations":[{"name":"coreos.com/rkt/stage1/run","value":"/run"},{"name":"coreos.com/rkt/stage1/interface-version","value":"7"}]}`
	if err := json.Unmarshal([]byte(mb), &m); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	files := []acibuild.File{{Path: "run", Mode: 0o755, Data: []byte("#!/bin/sh\necho stage1-ran\n")}}
	if err := acibuild.Build(&buf, &m, files); err != nil {
		t.Fatal(err)
	}
	s1 := c.WriteBytes("stage1-future.aci", buf.Bytes())
	app := c.WriteImage(c.A.InspectImage("example.com/inspect"))
	r := c.Rkt(testutil.Insecure, "run", "--stage1-path="+s1, app, "--exec", "/inspect")
	c.ExpectFailure(r, "interface version 7", "stage1-future")
	if strings.Contains(r.Stdout, "stage1-ran") {
		t.Errorf("the stage1 ran: %v", r)
	}
}

func waitUUIDFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && testutil.IsUUID(strings.TrimSpace(string(b))) {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no UUID in %s after 30s", path)
	return ""
}

func sums(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				out[p] = fileSum(p)
			}
			return nil
		})
	}
	if len(out) == 0 {
		t.Fatalf("no files under %v", dirs)
	}
	return out
}

func fileSum(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "missing"
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
