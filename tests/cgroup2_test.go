package tests

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// Helpers for pure cgroup v2 hosts (the Debian 12 guest of
// `./build.sh test-host`): there the pod's systemd enforces the limits on
// the app's own cgroup, below the pod's.

// isoPureV2 is whether this host mounts only cgroup2 at /sys/fs/cgroup.
func isoPureV2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// isoV2AppCgroup is app's cgroup2 directory below the pod's cgroup (from
// the pod's cgroups file), from the host.
func isoV2AppCgroup(t *testing.T, c *testutil.Ctx, uuid, app string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.PodDir(uuid), "cgroups"))
	if err != nil {
		t.Fatalf("the pod's cgroups file: %v", err)
	}
	for _, dir := range strings.Fields(string(b)) {
		found := ""
		_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() && e.Name() == app+".service" {
				found = p
				return filepath.SkipAll
			}
			return nil
		})
		if found != "" {
			return found
		}
	}
	t.Fatalf("no cgroup of %s.service below the pod's cgroups %q", app, b)
	return ""
}

// isoCheckV2Limits checks the app's cgroup2 files from the host, and that
// the app's /proc/self/cgroup (in out) is its unit's, as on v1.
func isoCheckV2Limits(t *testing.T, c *testutil.Ctx, uuid, out string, want map[string]string) {
	t.Helper()
	if cg := strings.TrimSpace(isoBlock(out, "CGROUP")); cg != "0::/system.slice/inspect.service" {
		t.Errorf("the app's /proc/self/cgroup is %q, want 0::/system.slice/inspect.service", cg)
	}
	dir := isoV2AppCgroup(t, c, uuid, "inspect")
	for f, w := range want {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if got := strings.TrimSpace(string(b)); err != nil || got != w {
			t.Errorf("%s of the app's cgroup %s: %q (%v), want %q", f, dir, got, err, w)
		}
	}
}

// TestIsolatorsV2ImageAndPod: on pure cgroup v2, an image's own isolators
// (cpu-shares, memory) reach the app's cgroup as cpu.weight and
// memory.max, and a pod isolator limits the slice of all the pod's apps.
func TestIsolatorsV2ImageAndPod(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.Isolators)
	if !isoPureV2() {
		t.Skip("checks cgroup2 files: this host is not pure cgroup v2 (the v1 limits are checked by TestIsolatorsConfinedApp)")
	}
	im := c.A.InspectImage("example.com/inspect", "--print-cgroup", "--print-cgroup-limits", "--print-msg=ready", "--sleep=60s")
	shares, err := types.NewLinuxCPUShares(512)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := types.NewResourceMemoryIsolator("60M", "60M")
	if err != nil {
		t.Fatal(err)
	}
	im.Manifest.App.Isolators = types.Isolators{shares.AsIsolator(), mem.AsIsolator()}
	id := c.Fetch(c.WriteImage(im))
	h, err := types.NewHash(id)
	if err != nil {
		t.Fatal(err)
	}
	podMem, err := types.NewResourceMemoryIsolator("200M", "200M")
	if err != nil {
		t.Fatal(err)
	}
	pm := schema.BlankPodManifest()
	pm.Apps = schema.AppList{{
		Name:  *types.MustACName("inspect"),
		Image: schema.RuntimeImage{Name: types.MustACIdentifier("example.com/inspect"), ID: *h},
	}}
	pm.Isolators = types.Isolators{podMem.AsIsolator()}
	b, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	p, uuid := isoStart(c, "--pod-manifest="+c.WriteBytes("pod.json", b))
	out := p.Stdout()
	if !strings.Contains(out, "memory.limit="+isoMemLimit(60_000_000)+"\n") {
		t.Errorf("from inside the app: no memory.limit=%s (the image's isolator) in\n%s", isoMemLimit(60_000_000), out)
	}
	// 512 shares are weight 20 (runc's and systemd's mapping of the
	// v1 range onto cgroup v2's).
	isoCheckV2Limits(t, c, uuid, out, map[string]string{"memory.max": isoMemLimit(60_000_000), "cpu.weight": "20"})
	slice := filepath.Dir(isoV2AppCgroup(t, c, uuid, "inspect"))
	if got := strings.TrimSpace(string(readFile(t, filepath.Join(slice, "memory.max")))); got != isoMemLimit(200_000_000) {
		t.Errorf("memory.max of the pod's apps' slice %s: %q, want %s (the pod isolator)", slice, got, isoMemLimit(200_000_000))
	}
	c.ExpectOK(c.Rkt("stop", uuid))
	p.Wait(testutil.Scale(30 * time.Second))
}
