package tests

import (
	"encoding/json"
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
