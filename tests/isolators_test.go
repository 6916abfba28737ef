package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// Issue 5 through the CLI, on the host stage1: the isolators given to
// `rkt run` are what the app (and a command entered into it) sees from
// inside, and the limits hold.

// Capability masks as /proc/PID/status prints them. Written out rather than
// computed by the code under test.
const (
	// appc's 14 default capabilities: CHOWN(0) DAC_OVERRIDE(1) FOWNER(3)
	// FSETID(4) KILL(5) SETGID(6) SETUID(7) SETPCAP(8) NET_BIND_SERVICE(10)
	// NET_RAW(13) SYS_CHROOT(18) MKNOD(27) AUDIT_WRITE(29) SETFCAP(31).
	isoDefaultCaps = "00000000a80425fb"
	// CHOWN(0) and NET_BIND_SERVICE(10).
	isoRetainedCaps = "0000000000000401"
	isoNoCaps       = "0000000000000000"
)

// isoConfined are the app flags of the "Done when": memory 50M,
// cpu 200m, a capability retain set and a seccomp remove set (socket(2),
// which the inspect program can try harmlessly and which nothing else in
// the app needs).
var isoConfined = []string{
	"--memory=50M", "--cpu=200m",
	"--caps-retain=CAP_NET_BIND_SERVICE,CAP_CHOWN",
	"--seccomp=mode=remove,errno=EPERM,socket",
}

// isoStatusFields are the /proc/self/status lines compared.
const isoStatusFields = "CapInh,CapPrm,CapEff,CapBnd,CapAmb,Seccomp,NoNewPrivs"

// isoValues collects the key=value lines of out.
func isoValues(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			if _, dup := m[k]; !dup {
				m[k] = v
			}
		}
	}
	return m
}

// isoExpect fails t unless out has each key=value of want.
func isoExpect(t *testing.T, what, out string, want map[string]string) {
	t.Helper()
	got := isoValues(out)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s=%q, want %q\n%s", what, k, got[k], v, out)
		}
	}
}

// isoBlock returns the text between TAG<<< and >>>TAG in out.
func isoBlock(out, tag string) string {
	_, rest, ok := strings.Cut(out, tag+"<<<\n")
	if !ok {
		return ""
	}
	in, _, _ := strings.Cut(rest, ">>>"+tag)
	return in
}

// isoMemLimit is what the kernel shows for a memory limit of n bytes: v1
// rounds it down to whole pages.
func isoMemLimit(n int64) string {
	page := int64(os.Getpagesize())
	return strconv.FormatInt(n/page*page, 10)
}

// isoStart starts a pod in the background and waits until its app printed
// ready; it returns the pod's UUID.
func isoStart(c *testutil.Ctx, args ...string) (*testutil.Proc, string) {
	c.T.Helper()
	uuidFile := c.Path("iso-uuid")
	p := c.StartRun(append([]string{"--uuid-file-save=" + uuidFile}, args...)...)
	deadline := time.Now().Add(testutil.Scale(30 * time.Second))
	for !strings.Contains(p.Stdout(), "ready") {
		if p.Exited() || time.Now().After(deadline) {
			c.T.Fatalf("the pod did not start: %v", p.Wait(time.Second))
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, err := os.ReadFile(uuidFile)
	if err != nil {
		c.T.Fatalf("--uuid-file-save: %v", err)
	}
	return p, strings.TrimSpace(string(b))
}

// isoPodCgroup is the pod's cgroup directory, from the host, in the v1
// hierarchy with ctrl, from the pod's cgroups file.
func isoPodCgroup(t *testing.T, c *testutil.Ctx, uuid, ctrl string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.PodDir(uuid), "cgroups"))
	if err != nil {
		t.Fatalf("the pod's cgroups file: %v", err)
	}
	for _, dir := range strings.Fields(string(b)) {
		rel, ok := strings.CutPrefix(dir, "/sys/fs/cgroup/")
		if !ok {
			continue
		}
		key, _, _ := strings.Cut(rel, "/")
		for _, k := range strings.Split(key, ",") {
			if k == ctrl {
				return dir
			}
		}
	}
	t.Fatalf("no %s hierarchy among the pod's cgroups:\n%s", ctrl, b)
	return ""
}

// isoAppCgroup is the app's cgroup directory, from the host, in the v1
// hierarchy with ctrl, or its cgroup2 directory on a pure v2 host.
func isoAppCgroup(t *testing.T, c *testutil.Ctx, uuid, app, ctrl string) string {
	t.Helper()
	if isoPureV2() {
		return isoV2AppCgroup(t, c, uuid, app)
	}
	return filepath.Join(isoPodCgroup(t, c, uuid, ctrl), "system.slice", app+".service")
}

// isoExpectQuota fails t unless the cgroup dir has the CFS quota of
// --cpu=200m: 20 ms in each 100 ms period.
func isoExpectQuota(t *testing.T, dir string) {
	t.Helper()
	if isoPureV2() {
		if got := strings.TrimSpace(string(readFile(t, filepath.Join(dir, "cpu.max")))); got != "20000 100000" {
			t.Errorf("%s/cpu.max = %q, want \"20000 100000\" for --cpu=200m", dir, got)
		}
		return
	}
	quota := strings.TrimSpace(string(readFile(t, filepath.Join(dir, "cpu.cfs_quota_us"))))
	period := strings.TrimSpace(string(readFile(t, filepath.Join(dir, "cpu.cfs_period_us"))))
	if quota != "20000" || period != "100000" {
		t.Errorf("%s: cpu.cfs_quota_us=%s cpu.cfs_period_us=%s, want 20000 and 100000 for --cpu=200m", dir, quota, period)
	}
}

// isoCPUUsed is the CPU time the app's cgroup used: usage_usec of its
// cpu.stat on cgroup v2, cpuacct.usage on v1.
func isoCPUUsed(t *testing.T, c *testutil.Ctx, uuid, app string, stat map[string]string) time.Duration {
	t.Helper()
	if us, err := strconv.ParseInt(stat["usage_usec"], 10, 64); err == nil {
		return time.Duration(us) * time.Microsecond
	}
	usage := strings.TrimSpace(string(readFile(t, filepath.Join(isoAppCgroup(t, c, uuid, app, "cpuacct"), "cpuacct.usage"))))
	ns, err := strconv.ParseInt(usage, 10, 64)
	if err != nil {
		t.Fatalf("cpuacct.usage of %s: %q: %v", app, usage, err)
	}
	return time.Duration(ns)
}

// TestIsolatorsConfinedApp: an app run with memory, cpu, capability and
// seccomp isolators sees exactly those from inside: the bounding and
// effective sets, seccomp filter mode, its cgroup's limits; the syscall its
// seccomp set removes fails with the errno asked for, others work.
func TestIsolatorsConfinedApp(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.Isolators)
	aci := c.InspectACI("--print-status="+isoStatusFields, "--print-cgroup", "--print-cgroup-limits", "--syscall=socket", "--syscall=getpid",
		"--print-msg=ready", "--sleep=60s")
	p, uuid := isoStart(c, append([]string{aci}, isoConfined...)...)
	out := p.Stdout()
	// From inside: the app's own v1 cgroups are at /sys/fs/cgroup as on
	// the host, with the limits.
	for _, want := range []string{"memory.limit=" + isoMemLimit(50_000_000), "cpu.quota=20000 100000"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("from inside the app: no %q in\n%s", want, out)
		}
	}
	isoExpect(t, "confined app", out, map[string]string{
		"CapBnd": isoRetainedCaps, "CapEff": isoRetainedCaps, "CapPrm": isoRetainedCaps,
		"CapInh": isoNoCaps, "CapAmb": isoNoCaps, "Seccomp": "2", "NoNewPrivs": "1",
		"syscall socket": "EPERM", "syscall getpid": "ok",
	})
	if isoPureV2() {
		isoCheckV2Limits(t, c, uuid, out, map[string]string{"memory.max": isoMemLimit(50_000_000), "cpu.max": "20000 100000"})
		c.ExpectOK(c.Rkt("stop", uuid))
		p.Wait(testutil.Scale(30 * time.Second))
		return
	}
	// And from the host, in the cgroups the app says it is in: its
	// /proc/self/cgroup paths are relative to the pod's.
	for _, f := range []struct{ ctrl, file, want string }{
		{"memory", "memory.limit_in_bytes", isoMemLimit(50_000_000)},
		{"cpu", "cpu.cfs_quota_us", "20000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
	} {
		dir := isoPodCgroup(t, c, uuid, f.ctrl)
		rel := isoCgroupOf(isoBlock(out, "CGROUP"), f.ctrl)
		if rel != "/system.slice/inspect.service" {
			t.Errorf("the app's %s cgroup is %q, want /system.slice/inspect.service:\n%s", f.ctrl, rel, out)
		}
		b, err := os.ReadFile(filepath.Join(dir, rel, f.file))
		if got := strings.TrimSpace(string(b)); err != nil || got != f.want {
			t.Errorf("%s of the app's cgroup %s: %q (%v), want %q", f.file, filepath.Join(dir, rel), got, err, f.want)
		}
	}
	c.ExpectOK(c.Rkt("stop", uuid))
	p.Wait(testutil.Scale(30 * time.Second))
}

// isoCgroupOf is the path of the v1 hierarchy with ctrl in a
// /proc/PID/cgroup text.
func isoCgroupOf(cgroup, ctrl string) string {
	for _, l := range strings.Split(cgroup, "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, k := range strings.Split(parts[1], ",") {
			if k == ctrl {
				return parts[2]
			}
		}
	}
	return ""
}

// TestIsolatorsDefaults: without isolators the app gets appc's 14
// capabilities and rkt's default seccomp filter (the blacklist, EPERM);
// --insecure-options=capabilities lifts the capability restriction and
// --insecure-options=seccomp the filter.
func TestIsolatorsDefaults(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.Isolators)
	aci := c.InspectACI("--print-status="+isoStatusFields, "--syscall=unshare", "--syscall=socket")
	r := c.ExpectOK(c.Run(aci))
	isoExpect(t, "default", r.Stdout, map[string]string{
		"CapBnd": isoDefaultCaps, "CapEff": isoDefaultCaps, "Seccomp": "2",
		"syscall unshare": "EPERM", "syscall socket": "ok",
	})

	// The full set is the one the test itself runs with (root's), but
	// CAP_SYS_MODULE (16), which stage1-host leaves out of it.
	self, err := strconv.ParseUint(isoValues(isoSelfStatus(t))["CapBnd"], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	full := fmt.Sprintf("%016x", self&^(1<<16))
	r = c.ExpectOK(c.RktWith(testutil.Opts{}, "--insecure-options=image,capabilities", "run",
		"--stage1-path="+c.Stage1().ACI, aci))
	isoExpect(t, "--insecure-options=capabilities", r.Stdout, map[string]string{
		"CapBnd": full, "CapEff": full, "Seccomp": "2", "syscall unshare": "EPERM",
	})

	r = c.ExpectOK(c.RktWith(testutil.Opts{}, "--insecure-options=image,seccomp", "run",
		"--stage1-path="+c.Stage1().ACI, aci))
	isoExpect(t, "--insecure-options=seccomp", r.Stdout, map[string]string{
		"CapBnd": isoDefaultCaps, "Seccomp": "0",
	})
}

func isoSelfStatus(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			out = append(out, k+"="+strings.TrimSpace(v))
		}
	}
	return strings.Join(out, "\n")
}

// TestIsolatorsNonRoot: a non-root app keeps the bounding set but has no
// effective, permitted or ambient capabilities.
func TestIsolatorsNonRoot(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.Isolators)
	r := c.ExpectOK(c.Run(c.InspectACI("--print-status="+isoStatusFields, "--print-user"), "--user=1000"))
	isoExpect(t, "--user=1000", r.Stdout, map[string]string{
		"CapBnd": isoDefaultCaps, "CapEff": isoNoCaps, "CapPrm": isoNoCaps, "CapAmb": isoNoCaps,
		"Seccomp": "2", "NoNewPrivs": "1",
	})
	if !strings.Contains(r.Stdout, "uid=1000 euid=1000") {
		t.Errorf("--user=1000: the app did not run as 1000: %v", r)
	}
}

// TestIsolatorsBadFlags: contradicting or unknown isolators stop rkt run
// with 254 and one clear error line, before any app runs.
func TestIsolatorsBadFlags(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.Isolators)
	aci := c.InspectACI("--print-msg=app-ran")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"retain and remove", []string{"--caps-retain=CAP_CHOWN", "--caps-remove=CAP_KILL"}, []string{"--caps-retain", "--caps-remove"}},
		{"unknown capability", []string{"--caps-retain=CAP_NOT_A_CAP"}, []string{"CAP_NOT_A_CAP"}},
		{"unknown syscall", []string{"--seccomp=mode=remove,errno=EPERM,not_a_syscall"}, []string{"not_a_syscall"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := c.Sub(t)
			r := cc.Run(append([]string{aci}, tc.args...)...)
			cc.ExpectFailure(r, tc.want...)
			if strings.Contains(r.Stdout, "app-ran") {
				t.Errorf("the app ran despite the bad isolator: %v", r)
			}
		})
	}
}

// TestIsolatorsOOM: an app over its memory limit is killed by the kernel;
// rkt run exits with its status (SIGKILL: 137) and rkt status reports it.
func TestIsolatorsOOM(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.Isolators)
	uuidFile := c.Path("uuid")
	r := c.Run("--uuid-file-save="+uuidFile, c.InspectACI("--print-msg=allocating", "--alloc-mb=200", "--print-msg=survived"), "--memory=50M")
	if r.Code != 137 || strings.Contains(r.Stdout, "survived") || !strings.Contains(r.Stdout, "allocating") {
		t.Fatalf("an app allocating 200 MB under --memory=50M: want it killed (exit 137): %v", r)
	}
	uuid := strings.TrimSpace(string(readFile(t, uuidFile)))
	p := c.Status(uuid)
	if p.State != "exited" || len(p.Apps) != 1 || p.Apps[0].ExitCode == nil || *p.Apps[0].ExitCode != 137 {
		t.Errorf("rkt status after the OOM kill: want exited, app exit code 137: %+v", p)
	}
}

// TestIsolatorsThrottled: a loop asking for 400 ms of CPU under --cpu=200m
// is throttled: the app's cgroup counts throttled periods and the loop gets
// about a fifth of a CPU. The loop counts CPU time, not wall time, so a
// loaded machine cannot keep it under its quota.
func TestIsolatorsThrottled(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.Isolators)
	p, uuid := isoStart(c, c.InspectACI("--print-msg=ready", "--busy-cpu=400ms", "--print-msg=busy-done", "--sleep=60s"), "--cpu=200m")
	app := "inspect"
	dir := isoAppCgroup(t, c, uuid, app, "cpu")
	deadline := time.Now().Add(testutil.Scale(20 * time.Second))
	for !strings.Contains(p.Stdout(), "busy-done") {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("the busy loop did not end: %v", p.Wait(time.Second))
		}
		time.Sleep(50 * time.Millisecond)
	}
	stat := isoValues(strings.ReplaceAll(string(readFile(t, filepath.Join(dir, "cpu.stat"))), " ", "="))
	t.Logf("cpu.stat of the app under --cpu=200m after 400 ms of CPU: %v", stat)
	isoExpectQuota(t, dir)
	periods, _ := strconv.ParseInt(stat["nr_periods"], 10, 64)
	throttled, _ := strconv.ParseInt(stat["nr_throttled"], 10, 64)
	used := isoCPUUsed(t, c, uuid, app, stat)
	if periods == 0 {
		t.Fatalf("cpu.stat of %s: no CFS periods counted: the quota is not in force\n%v", dir, stat)
	}
	// The quota is 20 ms of every 100 ms period: over its periods the app
	// may have used at most that (and a little for the period it started
	// in), however loaded the machine is.
	if used > time.Duration(periods)*25*time.Millisecond {
		t.Errorf("under --cpu=200m the app used %v of CPU over %d periods of 100 ms, more than 20%%", used, periods)
	}
	// It is throttled whenever it could have run more: on a loaded machine
	// the scheduler may hand it less than its quota, and then nothing needs
	// throttling. Only when it ran near its quota must throttling show.
	if perPeriod := used / time.Duration(periods); perPeriod >= 15*time.Millisecond && throttled < 1 {
		t.Errorf("cpu.stat of %s: %v of CPU a period under a 20 ms quota but never throttled\n%v", dir, perPeriod, stat)
	}
	// The loop stops at 400 ms of CPU; allow for start-up and one
	// period's overrun, but not for an unenforced quota. On cgroup v2 the
	// unit's cgroup also counts the stage2 helper's start (seconds under
	// qemu): there the bound over the periods above is the check.
	if !isoPureV2() && used > 700*time.Millisecond {
		t.Errorf("the busy loop used %v of CPU under --cpu=200m, asked to stop at 400 ms", used)
	}
	c.ExpectOK(c.Rkt("stop", uuid))
	p.Wait(testutil.Scale(30 * time.Second))
}

// TestIsolatorsEnter: `rkt enter` into a running confined app gets the
// app's confinement: the same capability sets, seccomp mode,
// no-new-privileges and cgroups, and the same syscall refused.
func TestIsolatorsEnter(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.Isolators)
	probe := []string{"--print-status=" + isoStatusFields, "--print-cgroup", "--syscall=socket"}
	args := append([]string{c.InspectACI(append(probe, "--print-msg=ready", "--sleep=60s")...)}, isoConfined...)
	p, uuid := isoStart(c, args...)
	app := p.Stdout()
	r := c.ExpectOK(c.Rkt(append([]string{"enter", uuid, "/inspect"}, probe...)...))
	want := isoValues(app)
	for _, k := range strings.Split(isoStatusFields, ",") {
		if want[k] == "" {
			t.Fatalf("the app did not print %s: %s", k, app)
		}
	}
	isoExpect(t, "the app", app, map[string]string{
		"CapBnd": isoRetainedCaps, "CapEff": isoRetainedCaps, "Seccomp": "2", "NoNewPrivs": "1", "syscall socket": "EPERM",
	})
	entered := map[string]string{"syscall socket": "EPERM"}
	for _, k := range strings.Split(isoStatusFields, ",") {
		entered[k] = want[k]
	}
	isoExpect(t, "rkt enter", r.Stdout, entered)
	if a, e := isoBlock(app, "CGROUP"), isoBlock(r.Stdout, "CGROUP"); a == "" || a != e {
		t.Errorf("rkt enter: /proc/self/cgroup differs from the app's:\napp:\n%s\nentered:\n%s", a, e)
	}
	c.ExpectOK(c.Rkt("stop", uuid))
	p.Wait(testutil.Scale(30 * time.Second))
}

// TestIsolatorsPodSeccomp: stage1-host turns nspawn's own seccomp filter
// off when every app has a filter of its own and no event handlers (the
// image's code then runs only under the app's filter); a pod with a
// handler keeps it. Seen from the host: the pod's PID 1 (the stage1's
// systemd) has a filter or not, the app always has one.
func TestIsolatorsPodSeccomp(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.Isolators | stage1test.BootsSystemd)
	for _, tc := range []struct {
		name     string
		handlers bool
		want     string // Seccomp of the pod's PID 1
	}{{"no handlers", false, "0"}, {"a pre-start handler", true, "2"}} {
		im := c.A.InspectImage(fmt.Sprintf("example.com/podseccomp-%t", tc.handlers),
			"--print-status=Seccomp", "--syscall=unshare", "--print-msg=ready", "--sleep=60s")
		if tc.handlers {
			im.Manifest.App.EventHandlers = []types.EventHandler{
				{Name: "pre-start", Exec: types.Exec{"/inspect", "--print-msg=pre-start"}},
			}
		}
		p, uuid := isoStart(c, c.WriteImage(im))
		isoExpect(t, tc.name+": the app", p.Stdout(), map[string]string{"Seccomp": "2", "syscall unshare": "EPERM"})
		ppid := strings.TrimSpace(string(readFile(t, filepath.Join(c.PodDir(uuid), "ppid"))))
		kids := strings.Fields(string(readFile(t, fmt.Sprintf("/proc/%s/task/%s/children", ppid, ppid))))
		if len(kids) != 1 {
			t.Fatalf("%s: nspawn (%s) has children %v, want the pod's PID 1", tc.name, ppid, kids)
		}
		status := string(readFile(t, "/proc/"+kids[0]+"/status"))
		if got := isoValues(strings.ReplaceAll(status, ":\t", "="))["Seccomp"]; got != tc.want {
			t.Errorf("%s: the pod's PID 1 has Seccomp %q, want %q", tc.name, got, tc.want)
		}
		c.ExpectOK(c.Rkt("stop", uuid))
		p.Wait(testutil.Scale(30 * time.Second))
	}
}
