package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rktng/rkt/tests/testutil"
)

// TestNomadCommandLine drives rkt exactly as Nomad's rkt task driver does:
// prepare with its flags (the UUID alone on stdout), run-prepared as a
// supervised child, status JSON and cat-manifest while it runs, SIGTERM to
// stop it.
func TestNomadCommandLine(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	alloc := c.Path("alloc")
	secrets := c.Path("secrets")
	for _, d := range []string{alloc, secrets} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Nomad makes the shared alloc dir writable by the task's user.
	if err := os.Chmod(alloc, 0o777); err != nil {
		t.Fatal(err)
	}
	c.WriteFile("secrets/token", "s3cret")
	aci := c.InspectACI()
	r := c.ExpectOK(c.Rkt("--insecure-options=all", "--debug=false", "prepare", "--stage1-path="+c.Stage1().ACI,
		"--no-overlay=true",
		"--volume=web-task-alloc,kind=host,source="+alloc, "--mount=volume=web-task-alloc,target=/alloc",
		"--volume=web-task-secrets,kind=host,source="+secrets+",readOnly=true", "--mount=volume=web-task-secrets,target=/secrets",
		"--set-env=NOMAD_TASK_NAME=web", "--set-env=NOMAD_ALLOC_DIR=/alloc",
		aci, "--exec=/inspect", "--memory=134217728", "--cpu=100", "--user=user1", "--group=group1",
		"--", "--on-sigterm=0", "--print-env=NOMAD_TASK_NAME", "--read-file=/secrets/token",
		"--read-file=/etc/resolv.conf", "--write-file=/alloc/started:yes", "--print-user", "--sleep=120s"))
	uuid := strings.TrimSpace(r.Stdout)
	if !testutil.IsUUID(uuid) {
		t.Fatalf("prepare's stdout trimmed is not the UUID alone: %q", r.Stdout)
	}
	// The driver's network and DNS flags go to run-prepared.
	p := c.Start("--insecure-options=all", "--debug=false", "run-prepared", "--net=host",
		"--dns=127.0.0.53", "--dns-search=service.consul", uuid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(alloc + "/started"); err == nil {
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("the task did not start: %v", p.Wait(time.Second))
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := c.Status(uuid)
	if st.State != "running" {
		t.Errorf("status while running: %+v", st)
	}
	cm := c.ExpectOK(c.Rkt("cat-manifest", uuid))
	var pm struct {
		Apps []json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal([]byte(cm.Stdout), &pm); err != nil || len(pm.Apps) != 1 {
		t.Errorf("cat-manifest: want one app: %v %v", err, cm)
	}
	// Nomad stops a task with SIGTERM to the supervised rkt.
	p.Signal(15)
	r = p.Wait(20 * time.Second)
	c.ExpectOK(r)
	for _, l := range []string{"NOMAD_TASK_NAME=web", "<<<s3cret>>>", "got=SIGTERM"} {
		expectLine(t, r, l)
	}
	for _, l := range []string{"nameserver 127.0.0.53", "search service.consul"} {
		if !strings.Contains(r.Stdout, l) {
			t.Errorf("run-prepared --dns/--dns-search: no %q in the pod's resolv.conf: %v", l, r)
		}
	}
	if v, _ := value(r.Stdout, "uid"); !strings.HasPrefix(v, "1000 euid=1000 gid=1000 egid=1000") {
		t.Errorf("--user=user1 --group=group1: %v", r)
	}
	c.WaitState(uuid, "exited", 10*time.Second)
}

// TestRktletCommandLines checks the image and pod commands the Kubernetes
// CRI (rktlet) runs and parses.
func TestRktletCommandLines(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	aci := c.InspectACI()
	r := c.ExpectOK(c.Rkt(testutil.Insecure, "image", "fetch", "--pull-policy=update", "--full=true", aci))
	lines := r.Lines()
	id := strings.TrimSpace(lines[len(lines)-1])
	if !testutil.IsImageID(id) {
		t.Fatalf("image fetch: last line %q is not the image ID", id)
	}
	r = c.ExpectOK(c.Rkt("image", "list", "--full", "--format=json", "--sort=importtime"))
	var imgs []testutil.ImageEntry
	if err := json.Unmarshal([]byte(r.Stdout), &imgs); err != nil || len(imgs) != 1 || imgs[0].ID != id {
		t.Errorf("image list --full --format=json: %v %v", err, r)
	}
	c.ExpectOK(c.Rkt("image", "cat-manifest", id))

	p, uuid := startSleeper(c, "0")
	c.ExpectOK(c.Rkt("status", uuid, "--format=json", "--wait-ready=10s"))
	c.ExpectOK(c.Rkt("stop", "--force=false", uuid))
	p.Wait(20 * time.Second)
	c.WaitState(uuid, "exited", 10*time.Second)
	c.ExpectOK(c.Rkt("rm", uuid))
	c.ExpectOK(c.Rkt("image", "rm", id))
}

// TestSystemdDocumentedUnit runs a pod from a unit file written as rkt's
// documentation taught (using-rkt-with-systemd.md): ExecStartPre= removes
// the last run's pod, ExecStart= runs with --net=host and saves the UUID,
// ExecStop= stops by that file, ExecStopPost= is `rkt gc --mark-only`.
// Every command succeeds, over a restart too, and the pods end as garbage
// that gc then removes.
func TestSystemdDocumentedUnit(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireSystemdHost(c)
	unit := fmt.Sprintf("rkt-compat-%d.service", os.Getpid())
	uuidFile := c.Path("unit.uuid")
	rkt := strings.Join([]string{c.A.Rkt, "--dir=" + c.Dir, "--local-config=" + c.LocalConfig,
		"--system-config=" + c.SystemConfig, "--user-config=" + c.UserConfig}, " ")
	aci := c.InspectACI("--on-sigterm=0", "--print-msg=unit-ready", "--sleep=300s")
	// "-" on the first line as in rkt's documentation: on the first
	// start there is no file yet; on the restart it names the last pod.
	unitFile(t, unit, "[Unit]\nDescription=rkt compat\n\n[Service]\nSlice=machine.slice\n"+
		"ExecStartPre=-"+rkt+" rm --uuid-file="+uuidFile+"\n"+
		"ExecStart="+rkt+" "+testutil.Insecure+" run --stage1-path="+c.Stage1().ACI+" --net=host --uuid-file-save="+uuidFile+" "+aci+"\n"+
		"ExecStop="+rkt+" stop --uuid-file="+uuidFile+"\n"+
		"ExecStopPost="+rkt+" gc --mark-only\n"+
		"KillMode=mixed\nTimeoutStopSec=120\n")
	var uuids []string
	for i, verb := range []string{"start", "restart"} {
		if out, err := sh(t, "systemctl", verb, unit); err != nil {
			t.Fatalf("systemctl %s %s: %v\n%s\n%s", verb, unit, err, out, unitJournal(t, unit))
		}
		sdWaitFor(t, "the app's unit-ready in the unit's journal", 90*time.Second, func() bool {
			return strings.Count(unitJournal(t, unit), "unit-ready") > i
		})
		b, err := os.ReadFile(uuidFile)
		if err != nil || len(strings.TrimSpace(string(b))) == 0 {
			t.Fatalf("--uuid-file-save: %q, %v", b, err)
		}
		uuids = append(uuids, strings.TrimSpace(string(b)))
		if i == 1 {
			if uuids[0] == uuids[1] {
				t.Errorf("restart ran the same pod %s", uuids[0])
			}
			if c.FindPod(uuids[0]) != nil {
				t.Errorf("ExecStartPre=rkt rm did not remove the first run's pod %s", uuids[0])
			}
		}
	}
	if out, err := sh(t, "systemctl", "stop", unit); err != nil {
		t.Fatalf("systemctl stop %s: %v\n%s", unit, err, out)
	}
	for _, p := range []string{"ExecStop", "ExecStopPost", "ExecStartPre"} {
		if out, _ := sh(t, "systemctl", "show", unit, "-p", p, "--value"); !strings.Contains(out, "status=0/0") {
			t.Errorf("%s of %s did not exit 0: %s\n%s", p, unit, out, unitJournal(t, unit))
		}
	}
	if res, _ := sh(t, "systemctl", "show", unit, "-p", "Result", "--value"); res != "success" {
		t.Errorf("%s after systemctl stop: Result=%s, want success\n%s", unit, res, unitJournal(t, unit))
	}
	if r := c.Rkt("status", uuids[1]); !strings.Contains(r.Stdout, "state=exited garbage\n") {
		t.Errorf("after ExecStopPost=rkt gc --mark-only: want the pod's state=exited garbage: %v", r)
	}
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	if c.FindPod(uuids[1]) != nil {
		t.Errorf("gc left the pod %s", uuids[1])
	}
}

// TestSystemdPrivateUsers runs a --private-users pod as a system service's
// main process (ExecStart=rkt run, where stage1-host keeps the pod in the
// unit's cgroup) and from a scope: the app is root in its own user
// namespace both ways, the pod's systemd owning its part of the cgroup.
func TestSystemdPrivateUsers(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireSystemdHost(c)
	aci := c.InspectACI("--print-user", "--print-ns=user", "--print-msg=pu-done")
	host, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range [][]string{
		{"--wait", "--pipe", "-p", "Delegate=yes", fmt.Sprintf("--unit=rkt-pu-%d", os.Getpid())},
		{"--scope", fmt.Sprintf("--unit=rkt-pu-scope-%d", os.Getpid())},
	} {
		args := append(how, strings.Fields(rktExec(c, "--private-users", "--net=host", aci))...)
		out, err := sh(t, "systemd-run", args...)
		if err != nil {
			t.Errorf("systemd-run %s: %v\n%s", how[0], err, out)
			continue
		}
		ns := ""
		for _, l := range strings.Split(out, "\n") {
			if _, v, ok := strings.Cut(l, "ns-user="); ok {
				ns = v
			}
		}
		if !strings.Contains(out, "uid=0 euid=0") || ns == "" || ns == host {
			t.Errorf("systemd-run %s: want uid 0 in a user namespace of the pod's own (the host's is %s):\n%s", how[0], host, out)
		}
	}
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
}
