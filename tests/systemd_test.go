package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/stage1/cgroups"
	"github.com/rktng/rkt/tests/testutil"
)

// The host stage1 on a host that runs systemd as PID 1 with pure cgroup v2
// (the Debian 12 guest of `./build.sh test-host`): machined registration
// as systemd expects it, the pod's journal seen from the host, and rkt run
// as a systemd service.

// requireSystemdHost skips unless PID 1 is systemd and cgroups are pure v2.
func requireSystemdHost(c *testutil.Ctx) {
	c.T.Helper()
	c.RequireCaps(stage1test.BootsSystemd)
	comm, _ := os.ReadFile("/proc/1/comm")
	if strings.TrimSpace(string(comm)) != "systemd" || !isoPureV2() {
		c.T.Skip("needs systemd as PID 1 and pure cgroup v2 (`./build.sh test-host` runs it in a Debian 12 guest)")
	}
	for _, tool := range []string{"machinectl", "systemctl", "journalctl"} {
		c.RequireTool(tool)
	}
}

// sh runs a host command and returns its combined output.
func sh(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// sdWaitFor polls f until it is true or the scaled timeout passes.
func sdWaitFor(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(testutil.Scale(d))
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// machineGone checks that gc left neither the machine nor its scope.
func machineGone(t *testing.T, uuid string) {
	t.Helper()
	name := "rkt-" + uuid
	if out, _ := sh(t, "machinectl", "list", "--no-legend"); strings.Contains(out, name) {
		t.Errorf("after gc, machinectl still lists %s:\n%s", name, out)
	}
	scope := filepath.Join("/sys/fs/cgroup", cgroups.Slice, cgroups.ScopeName(name))
	if _, err := os.Stat(scope); err == nil {
		t.Errorf("after gc, the pod's cgroup %s is still there", scope)
	}
}

// TestSystemdMachineScope: rkt run from a scope (a login shell, `systemd-run
// --scope`) puts the pod in machine-rkt\x2d….scope in machine.slice, as
// rkt 1.30 did; machinectl status and journalctl -M see it and the app's
// lines; machinectl poweroff ends it in order and gc leaves nothing.
func TestSystemdMachineScope(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireSystemdHost(c)
	p, uuid := startSleeper(c, "0")
	name := "rkt-" + uuid
	scope := cgroups.ScopeName(name)
	if unit, err := sh(t, "machinectl", "show", name, "-p", "Unit", "--value"); err != nil || unit != scope {
		t.Errorf("machinectl show %s -p Unit: %q (%v), want %q", name, unit, err, scope)
	}
	if cg, err := sh(t, "systemctl", "show", scope, "-p", "ControlGroup", "--value"); err != nil || cg != "/"+cgroups.Slice+"/"+scope {
		t.Errorf("the pod's scope is in %q (%v), want /%s/%s", cg, err, cgroups.Slice, scope)
	}
	if out, err := sh(t, "machinectl", "status", name, "--no-pager"); err != nil || !strings.Contains(out, "Leader:") {
		t.Errorf("machinectl status %s: %v\n%s", name, err, out)
	}
	var journal string
	sdWaitFor(t, "the app's line in journalctl -M "+name, 30*time.Second, func() bool {
		journal, _ = sh(t, "journalctl", "-M", name, "--no-pager", "-o", "cat")
		return strings.Contains(journal, "ready")
	})
	if out, err := sh(t, "machinectl", "poweroff", name); err != nil {
		t.Fatalf("machinectl poweroff %s: %v\n%s", name, err, out)
	}
	r := c.ExpectOK(p.Wait(testutil.Scale(30 * time.Second)))
	expectLine(t, r, "got=SIGTERM")
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	machineGone(t, uuid)
}

// TestSystemdMachineTerminate: machinectl terminate kills the pod; rkt
// run returns and gc leaves neither machine nor cgroup.
func TestSystemdMachineTerminate(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireSystemdHost(c)
	p, uuid := startSleeper(c, "0")
	if out, err := sh(t, "machinectl", "terminate", "rkt-"+uuid); err != nil {
		t.Fatalf("machinectl terminate: %v\n%s", err, out)
	}
	if r := p.Wait(testutil.Scale(30 * time.Second)); r.Err != nil {
		t.Fatalf("rkt run after machinectl terminate: %v", r)
	}
	c.WaitState(uuid, "exited", testutil.Scale(10*time.Second))
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	machineGone(t, uuid)
}

// unitFile writes a transient-lifetime unit in /run/systemd/system and
// removes it at the end of the test.
func unitFile(t *testing.T, name, content string) {
	t.Helper()
	path := filepath.Join("/run/systemd/system", name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("systemctl", "stop", name).Run()
		os.Remove(path)
		exec.Command("systemctl", "daemon-reload").Run()
		exec.Command("systemctl", "reset-failed", name).Run()
	})
	if out, err := sh(t, "systemctl", "daemon-reload"); err != nil {
		t.Fatalf("daemon-reload: %v\n%s", err, out)
	}
}

// rktExec is an ExecStart= line running rkt with the test's directories.
func rktExec(c *testutil.Ctx, args ...string) string {
	all := append([]string{c.A.Rkt, "--dir=" + c.Dir, "--local-config=" + c.LocalConfig, "--system-config=" + c.SystemConfig,
		"--user-config=" + c.UserConfig, testutil.Insecure, "run", "--stage1-path=" + c.Stage1().ACI}, args...)
	return strings.Join(all, " ")
}

func unitJournal(t *testing.T, unit string) string {
	out, _ := sh(t, "journalctl", "-u", unit, "--no-pager", "-o", "cat")
	return out
}

// TestSystemdUnit: a service with ExecStart=rkt run keeps the pod in its
// own unit (--keep-unit, as rkt 1.30 did in a service); systemctl stop
// stops the app gracefully (SIGTERM) with Result=success; systemctl
// restart runs a new pod; an app's exit status is the service's.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireSystemdHost(c)
	unit := fmt.Sprintf("rkt-test-%d.service", os.Getpid())
	aci := c.InspectACI("--on-sigterm=0", "--print-msg=ready", "--sleep=300s")
	unitFile(t, unit, "[Service]\nExecStart="+rktExec(c, aci, "--memory=50M")+"\nKillMode=mixed\n")
	if out, err := sh(t, "systemctl", "start", unit); err != nil {
		t.Fatalf("systemctl start %s: %v\n%s", unit, err, out)
	}
	sdWaitFor(t, "the app's ready in the unit's journal", 60*time.Second, func() bool {
		return strings.Count(unitJournal(t, unit), "ready") >= 1
	})
	machines, _ := sh(t, "machinectl", "list", "--no-legend")
	var name string
	for _, f := range strings.Fields(machines) {
		if strings.HasPrefix(f, "rkt-") {
			if u, _ := sh(t, "machinectl", "show", f, "-p", "Unit", "--value"); u == unit {
				name = f
			}
		}
	}
	if name == "" {
		t.Errorf("no machine of unit %s in machinectl list:\n%s", unit, machines)
	}
	if out, err := sh(t, "systemctl", "restart", unit); err != nil {
		t.Fatalf("systemctl restart %s: %v\n%s", unit, err, out)
	}
	sdWaitFor(t, "the restarted app's ready", 60*time.Second, func() bool {
		return strings.Count(unitJournal(t, unit), "ready") >= 2
	})
	if out, err := sh(t, "systemctl", "stop", unit); err != nil {
		t.Fatalf("systemctl stop %s: %v\n%s", unit, err, out)
	}
	j := unitJournal(t, unit)
	if n := strings.Count(j, "got=SIGTERM"); n < 2 {
		t.Errorf("the app got SIGTERM %d times over restart and stop, want 2:\n%s", n, j)
	}
	if res, _ := sh(t, "systemctl", "show", unit, "-p", "Result", "--value"); res != "success" {
		t.Errorf("%s after systemctl stop: Result=%s, want success\n%s", unit, res, j)
	}
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	if out, _ := sh(t, "machinectl", "list", "--no-legend"); name != "" && strings.Contains(out, name) {
		t.Errorf("after stop and gc, %s is still listed:\n%s", name, out)
	}

	// The app's exit status is the service's (systemd-run makes a
	// service too).
	args := append([]string{"--wait", "-p", "Delegate=yes", "--unit=" + strings.TrimSuffix(unit, ".service") + "-exit"},
		strings.Fields(rktExec(c, c.InspectACI("--print-msg=exiting", "--exit-code=7"), "--cpu=500m"))...)
	out, _ := sh(t, "systemd-run", args...)
	if !strings.Contains(out, "status=7") {
		t.Errorf("systemd-run --wait of rkt run with an app exiting 7: want status=7 reported:\n%s", out)
	}
}

// TestSystemdNotify: in a Type=notify unit, systemctl start returns once
// the app of an image declaring systemd-notify support said READY=1.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireSystemdHost(c)
	unit := fmt.Sprintf("rkt-test-notify-%d.service", os.Getpid())
	im := c.A.InspectImage("example.com/notify", "--print-msg=before-ready", "--sleep=2s", "--notify=READY=1", "--print-msg=after-ready", "--sleep=300s")
	im.Manifest.Annotations.Set("appc.io/executor/supports-systemd-notify", "true")
	unitFile(t, unit, "[Service]\nType=notify\nNotifyAccess=all\nTimeoutStartSec=600\nExecStart="+rktExec(c, c.WriteImage(im))+"\nKillMode=mixed\n")
	if out, err := sh(t, "systemctl", "start", unit); err != nil {
		t.Fatalf("systemctl start %s: %v\n%s", unit, err, out)
	}
	j := unitJournal(t, unit)
	if !strings.Contains(j, "before-ready") {
		t.Errorf("systemctl start of a Type=notify unit returned before the app said READY=1:\n%s", j)
	}
	if st, _ := sh(t, "systemctl", "is-active", unit); st != "active" {
		t.Errorf("%s after start: %s", unit, st)
	}
	sh(t, "systemctl", "stop", unit)
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
}
