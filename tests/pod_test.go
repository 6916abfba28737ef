package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"

	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// TestRunExitCodes checks `rkt run`: the app's output, its exit status
// passed through, and 254 for rkt's own failures.
func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	r := c.ExpectOK(c.Run(c.InspectACI("--print-msg=hello from the pod")))
	expectLine(t, r, "hello from the pod")

	for _, code := range []string{"3", "1", "253"} {
		r := c.Run(c.InspectACI("--print-msg=failing", "--exit-code="+code))
		c.Expect(r, atoi(code))
		expectLine(t, r, "failing")
	}
	c.ExpectFailure(c.Run(c.Path("no-such-image.aci")), "no-such-image.aci")
	// A missing executable: fly fails before exec, the host stage1's app
	// unit fails as systemd's exec failure (203).
	expectAppStartFailure(c, c.Run(c.InspectACI(), "--exec=/no/such/binary"), 203, "/no/such/binary")
	expectOnlyOverlays(c)
}

// expectOnlyOverlays checks that once pods ended, only their rootfs
// overlays (mounted by stage0 and left for gc) and their network namespace
// (bound at the pod's netns until gc deletes its networks, as in rkt)
// remain in the host's mount namespace: the stage1's own mounts (/proc,
// /sys, /dev, volumes) must not leak out of the pod.
func expectOnlyOverlays(c *testutil.Ctx) {
	c.T.Helper()
	for _, m := range testutil.Mounts(c.Dir) {
		if m.FSType != "overlay" && !isPodNetNS(m) {
			c.T.Errorf("a pod leaked a %s mount of %s into the host: %s", m.FSType, m.Source, m.Point)
		}
	}
}

func isPodNetNS(m testutil.Mount) bool {
	return m.FSType == "nsfs" && filepath.Base(m.Point) == "netns"
}

func atoi(s string) int {
	n := 0
	for _, ch := range s {
		n = n*10 + int(ch-'0')
	}
	return n
}

// TestPrepareRunPrepared walks a pod through prepare and run-prepared,
// checking states, the on-disk layout and that it cannot run twice.
func TestPrepareRunPrepared(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI("--print-msg=prepared pod ran", "--exit-code=5"))
	uuid := c.MustPrepare("--quiet", id)
	if d := c.PodDir(uuid); d != filepath.Join(c.Dir, "pods", "prepared", uuid) {
		t.Errorf("prepared pod lives in %q, want pods/prepared/%s", d, uuid)
	}
	if p := c.Status(uuid); p.State != "prepared" || p.Name != uuid {
		t.Errorf("status of a prepared pod: %+v", p)
	}
	podDir := c.PodDir(uuid)
	for _, f := range []string{"pod", "stage1/manifest", "appsinfo/inspect/manifest", "appsinfo/inspect/treeStoreID"} {
		if _, err := os.Stat(filepath.Join(podDir, f)); err != nil {
			t.Errorf("prepared pod lacks %s: %v", f, err)
		}
	}

	r := c.Rkt(testutil.Insecure, "run-prepared", uuid)
	c.Expect(r, 5)
	expectLine(t, r, "prepared pod ran")
	if d := c.PodDir(uuid); d != filepath.Join(c.Dir, "pods", "run", uuid) {
		t.Errorf("exited pod lives in %q, want pods/run/%s", d, uuid)
	}
	if p := c.Status(uuid); p.State != "exited" {
		t.Errorf("state after run-prepared: %q, want exited", p.State)
	}
	c.ExpectFailure(c.Rkt(testutil.Insecure, "run-prepared", uuid), uuid)
}

// TestListStatus checks `rkt list` and `rkt status` in text and JSON for a
// prepared and an exited pod.
func TestListStatus(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI("--exit-code=0"))
	before := time.Now().Add(-2 * time.Second)
	prepared := c.MustPrepare(id)
	var exited string
	uuidFile := c.Path("uuid")
	c.ExpectOK(c.Run("--uuid-file-save="+uuidFile, id))
	exited = strings.TrimSpace(string(readFile(t, uuidFile)))

	r := c.ExpectOK(c.Rkt("list"))
	lines := r.Lines()
	if len(lines) != 3 {
		t.Fatalf("list: want a legend and two pods: %v", r)
	}
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "UUID APP IMAGE NAME STATE CREATED STARTED NETWORKS" {
		t.Errorf("list legend %q", lines[0])
	}
	for uuid, state := range map[string]string{prepared: "prepared", exited: "exited"} {
		found := false
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) >= 4 && f[0] == uuid[:8] {
				found = true
				if f[1] != "inspect" || f[2] != "example.com/inspect:1.0.0" || f[3] != state {
					t.Errorf("list row %q: want %s inspect example.com/inspect:1.0.0 %s ...", l, uuid[:8], state)
				}
			}
		}
		if !found {
			t.Errorf("pod %s not in list: %v", uuid, r)
		}
	}
	r = c.ExpectOK(c.Rkt("list", "--no-legend", "--full"))
	// rkt 1.30 cut the IMAGE ID column to sha512- and 12 digits.
	if len(r.Lines()) != 2 || !strings.Contains(r.Stdout, prepared) || !strings.Contains(r.Stdout, "\t"+id[:19]+"\t") || strings.Contains(r.Stdout, id[:20]) {
		t.Errorf("list --no-legend --full: want two rows with full UUIDs and rkt's image IDs: %v", r)
	}

	pods := c.List()
	if len(pods) != 2 {
		t.Fatalf("list JSON: %d pods, want 2", len(pods))
	}
	for _, p := range pods {
		if len(p.AppNames) != 1 || p.AppNames[0] != "inspect" || len(p.Apps) != 1 || p.Apps[0].ImageID != id {
			t.Errorf("list JSON pod %s: app_names %v apps %+v", p.Name, p.AppNames, p.Apps)
		}
		if p.CreatedAt == nil || time.Unix(*p.CreatedAt, 0).Before(before) || time.Unix(*p.CreatedAt, 0).After(time.Now()) {
			t.Errorf("list JSON pod %s: created_at %v is not this run's time in seconds", p.Name, p.CreatedAt)
		}
		switch p.Name {
		case prepared:
			if p.State != "prepared" || p.StartedAt != nil {
				t.Errorf("prepared pod: state %q started_at %v", p.State, p.StartedAt)
			}
		case exited:
			if p.State != "exited" || p.StartedAt == nil {
				t.Errorf("exited pod: state %q started_at %v", p.State, p.StartedAt)
			}
		default:
			t.Errorf("unknown pod %s listed", p.Name)
		}
	}

	st := c.ExpectOK(c.Rkt("status", exited))
	for _, key := range []string{"state", "created", "started", "exited"} {
		if _, ok := value(st.Stdout, key); !ok {
			t.Errorf("status text lacks %s=: %v", key, st)
		}
	}
	expectLine(t, st, "state=exited")
	expectLine(t, st, "exited=true")
	if c.Stage1().Caps.Has(stage1test.RecordsAppStatus) {
		expectLine(t, st, "app-inspect=0")
	}
	if p := c.Status(exited); p.State != "exited" || (c.Stage1().Caps.Has(stage1test.RecordsAppStatus) && (p.Apps[0].ExitCode == nil || *p.Apps[0].ExitCode != 0)) {
		t.Errorf("status JSON of the exited pod: %+v", p)
	}
	expectLine(t, c.ExpectOK(c.Rkt("status", "--uuid-file="+uuidFile)), "state=exited")
	pretty := c.ExpectOK(c.Rkt("status", "--format=json-pretty", exited))
	var pp testutil.Pod
	if err := json.Unmarshal([]byte(pretty.Stdout), &pp); err != nil || pp.Name != exited || !strings.Contains(pretty.Stdout, "\n") {
		t.Errorf("status --format=json-pretty: %v %v", err, pretty)
	}
}

// startSleeper starts a pod whose app prints "ready" once it handles
// SIGTERM (exiting with termCode), then sleeps; it returns the running rkt
// and the pod UUID once the app is ready.
func startSleeper(c *testutil.Ctx, termCode string, extra ...string) (*testutil.Proc, string) {
	c.T.Helper()
	uuidFile := c.Path("sleeper-uuid")
	os.Remove(uuidFile)
	args := append([]string{"--uuid-file-save=" + uuidFile}, extra...)
	args = append(args, c.InspectACI("--on-sigterm="+termCode, "--print-msg=ready", "--sleep=120s"))
	p := c.StartRun(args...)
	deadline := time.Now().Add(testutil.Scale(30 * time.Second))
	for !strings.Contains(p.Stdout(), "ready") {
		if p.Exited() || time.Now().After(deadline) {
			c.T.Fatalf("the sleeping pod did not start: %v", p.Wait(time.Second))
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := os.ReadFile(uuidFile)
	if err != nil {
		c.T.Fatalf("--uuid-file-save: %v", err)
	}
	uuid := strings.TrimSpace(string(b))
	if string(b) != uuid {
		c.T.Errorf("--uuid-file-save wrote %q: want the UUID without a newline", b)
	}
	return p, uuid
}

// TestStop stops a running pod gracefully and by force, and checks status
// --wait and the states on the way.
func TestStop(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)

	p, uuid := startSleeper(c, "7")
	if st := c.Status(uuid); st.State != "running" {
		t.Errorf("state of the sleeping pod: %q, want running", st.State)
	}
	expectLine(t, c.ExpectOK(c.Rkt("status", uuid)), "exited=false")
	waiter := c.Start("status", "--wait", "--format=json", uuid)
	time.Sleep(100 * time.Millisecond)
	if waiter.Exited() {
		t.Errorf("status --wait returned while the pod runs: %v", waiter.Wait(0))
	}
	c.ExpectOK(c.Rkt("stop", uuid))
	r := p.Wait(20 * time.Second)
	// The app handled SIGTERM and exited 7: that is the pod's status.
	c.Expect(r, 7)
	expectLine(t, r, "got=SIGTERM")
	w := c.ExpectOK(waiter.Wait(20 * time.Second))
	var wp testutil.Pod
	if err := json.Unmarshal([]byte(w.Stdout), &wp); err != nil || wp.State != "exited" {
		t.Errorf("status --wait: %v %v", err, w)
	}
	if c.Stage1().Caps.Has(stage1test.RecordsAppStatus) && (len(wp.Apps) != 1 || wp.Apps[0].ExitCode == nil || *wp.Apps[0].ExitCode != 7) {
		t.Errorf("status --wait: app exit code: %+v", wp.Apps)
	}
	// A unit's ExecStop= must not fail when the pod ended first.
	if r := c.ExpectOK(c.Rkt("stop", uuid)); r.Stdout != fmt.Sprintf("pod %q is already stopped\n", uuid) {
		t.Errorf("stop of a stopped pod: want rkt's line: %v", r)
	}

	p, uuid = startSleeper(c, "0")
	uuidFile := c.Path("force-uuid")
	os.WriteFile(uuidFile, []byte(uuid), 0o644)
	start := time.Now()
	c.ExpectOK(c.Rkt("stop", "--force", "--uuid-file="+uuidFile))
	r = p.Wait(20 * time.Second)
	if r.Err != nil || strings.Contains(r.Stdout, "got=SIGTERM") {
		t.Errorf("stop --force: want the app killed without SIGTERM: %v", r)
	}
	if c.Stage1().Flavor == "fly" && r.Code != 128+int(syscall.SIGKILL) {
		t.Errorf("stop --force of a fly pod: rkt (the app) should die of SIGKILL: %v", r)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stop --force took %v", d)
	}
	c.WaitState(uuid, "exited", 10*time.Second)
}

// TestRm removes prepared and exited pods, refuses running and unknown ones.
func TestRm(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI("--write-file=/etc/x:y"))
	prepared := c.MustPrepare(id)
	uuidFile := c.Path("uuid")
	c.ExpectOK(c.Run("--uuid-file-save="+uuidFile, id))
	exited := strings.TrimSpace(string(readFile(t, uuidFile)))

	p, running := startSleeper(c, "0")
	c.ExpectFailure(c.Rkt("rm", running), running[:8])
	if c.PodDir(running) == "" {
		t.Errorf("rm of a running pod removed its directory")
	}

	c.ExpectOK(c.Rkt("rm", prepared))
	c.ExpectOK(c.Rkt("rm", "--uuid-file="+uuidFile))
	for _, u := range []string{prepared, exited} {
		if d := c.PodDir(u); d != "" {
			t.Errorf("rm left %s", d)
		}
		if c.FindPod(u) != nil {
			t.Errorf("pod %s still listed after rm", u)
		}
		if ms := testutil.MountsUnder(filepath.Join(c.Dir, "pods")); len(ms) != 0 {
			for _, m := range ms {
				if strings.Contains(m, u) {
					t.Errorf("rm left mount %s", m)
				}
			}
		}
	}
	c.ExpectFailure(c.Rkt("rm", prepared), prepared[:8])
	c.ExpectOK(c.Rkt("stop", "--force", running))
	p.Wait(20 * time.Second)
}

// TestGC checks the gc protocol: --mark-only, the grace period, expiry of
// prepared pods, running pods left alone and no mount left behind.
func TestGC(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI("--write-file=/etc/x:y"))
	uuidFile := c.Path("uuid")
	c.ExpectOK(c.Run("--uuid-file-save="+uuidFile, id))
	exited := strings.TrimSpace(string(readFile(t, uuidFile)))
	prepared := c.MustPrepare(id)
	p, running := startSleeper(c, "0")

	c.ExpectOK(c.Rkt("gc", "--mark-only"))
	if d := c.PodDir(exited); d != filepath.Join(c.Dir, "pods", "exited-garbage", exited) {
		t.Errorf("gc --mark-only: exited pod in %q, want pods/exited-garbage", d)
	}
	if c.FindPod(exited) == nil {
		t.Errorf("gc --mark-only removed the exited pod from the list")
	}
	c.ExpectOK(c.Rkt("gc")) // 30 minutes of grace: the marked pod stays
	if c.PodDir(exited) == "" {
		t.Errorf("gc removed a pod marked moments ago despite the 30m grace period")
	}
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	if d := c.PodDir(exited); d != "" {
		t.Errorf("gc --grace-period=0s left %s", d)
	}
	for _, m := range testutil.MountsUnder(c.Dir) {
		if strings.Contains(m, exited) {
			t.Errorf("gc left mount %s", m)
		}
	}
	if c.PodDir(prepared) == "" {
		t.Errorf("gc removed a prepared pod before --expire-prepared (24h)")
	}
	if c.PodDir(running) == "" || c.Status(running).State != "running" {
		t.Errorf("gc touched a running pod")
	}
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s", "--expire-prepared=0s"))
	if d := c.PodDir(prepared); d != "" {
		t.Errorf("gc --expire-prepared=0s left the prepared pod: %s", d)
	}
	c.ExpectOK(c.Rkt("stop", running))
	p.Wait(20 * time.Second)
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	if left := c.List(); len(left) != 0 {
		t.Errorf("pods left after gc of everything: %+v", left)
	}
	if ms := testutil.MountsUnder(c.Dir); len(ms) != 0 {
		t.Errorf("mounts left under --dir after gc: %q", ms)
	}
}

// TestCatManifest prints a pod's manifest.
func TestCatManifest(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI())
	uuid := c.MustPrepare("--set-env=FROM=cat-manifest", id)
	r := c.ExpectOK(c.Rkt("cat-manifest", uuid))
	var pm schema.PodManifest
	if err := json.Unmarshal([]byte(r.Stdout), &pm); err != nil {
		t.Fatalf("cat-manifest: not a pod manifest: %v: %v", err, r)
	}
	if len(pm.Apps) != 1 || pm.Apps[0].Name.String() != "inspect" || pm.Apps[0].Image.ID.String() != id {
		t.Errorf("cat-manifest apps: %+v", pm.Apps)
	}
	if v, ok := pm.Apps[0].App.Environment.Get("FROM"); !ok || v != "cat-manifest" {
		t.Errorf("cat-manifest: --set-env not in the app's environment: %+v", pm.Apps[0].App.Environment)
	}
	p := c.ExpectOK(c.Rkt("cat-manifest", "--pretty-print", uuid))
	if strings.Count(p.Stdout, "\n") < 5 {
		t.Errorf("cat-manifest --pretty-print is not indented: %q", p.Stdout)
	}
}

// TestExport exports an exited pod's app as an ACI holding what the app
// wrote, and runs it.
func TestExport(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	uuidFile := c.Path("uuid")
	id := c.Fetch(c.InspectACI("--write-file=/etc/out:written in the pod"))
	p, running := startSleeper(c, "0")
	c.ExpectFailure(c.Rkt("export", running, c.Path("running.aci")), running[:8])
	c.ExpectOK(c.Rkt("stop", running))
	p.Wait(20 * time.Second)

	c.ExpectOK(c.Run("--uuid-file-save="+uuidFile, id))
	uuid := strings.TrimSpace(string(readFile(t, uuidFile)))
	out := c.Path("exported.aci")
	c.ExpectOK(c.Rkt("export", uuid, out))
	files := tarFiles(t, readFile(t, out))
	if files["rootfs/etc/out"] != "written in the pod" {
		t.Errorf("exported image: rootfs/etc/out = %q", files["rootfs/etc/out"])
	}
	if _, ok := files["rootfs/inspect"]; !ok {
		t.Errorf("exported image lacks rootfs/inspect")
	}
	if _, ok := files["manifest"]; !ok {
		t.Fatalf("exported image has no manifest")
	}
	c.ExpectFailure(c.Rkt("export", uuid, out), out)
	c.ExpectOK(c.Rkt("export", "--overwrite", uuid, out))

	r := c.ExpectOK(c.Run(out, "--exec=/inspect", "--", "--read-file=/etc/out"))
	expectLine(t, r, "<<<written in the pod>>>")
}
