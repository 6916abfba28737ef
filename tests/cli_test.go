package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/aci/fetch/fetchtest"
	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// TestNomadPortAfterImage prepares a pod with the exact command line of
// Nomad's rkt driver for a task with a port map: pod flags (--port) after
// the image, mixed with the image's --exec, --memory, --cpu and
// --cpu-shares, then reads them back from the pod manifest.
func TestNomadPortAfterImage(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	im := c.A.InspectImage("example.com/redis")
	im.Manifest.App.Ports = []types.Port{{Name: *types.MustACName("6379-tcp"), Protocol: "tcp", Port: 6379}}
	aci := c.WriteImage(im)
	alloc := c.Path("alloc")
	c.WriteFile("alloc/x", "")
	uuid := c.MustPrepare("--no-overlay=true",
		"--volume=redis-alloc,kind=host,source="+alloc, "--mount=volume=redis-alloc,target=/alloc",
		"--set-env=NOMAD_TASK_NAME=redis",
		aci, "--exec=/inspect", "--memory=134217728", "--cpu=100", "--cpu-shares=512",
		"--port=6379-tcp:29214", "--set-env=LATE=1", "--user=user1", "--", "--print-env=LATE")
	pm := catManifest(c, uuid)
	if len(pm.Ports) != 1 || pm.Ports[0].Name.String() != "6379-tcp" || pm.Ports[0].HostPort != 29214 {
		t.Errorf("--port after the image: pod manifest ports %+v", pm.Ports)
	}
	if len(pm.Apps) != 1 {
		t.Fatalf("want one app: %+v", pm.Apps)
	}
	app := pm.Apps[0].App
	if app == nil || app.Exec[0] != "/inspect" || len(app.Exec) != 2 || app.Exec[1] != "--print-env=LATE" || app.User != "user1" {
		t.Errorf("app flags and args after the image: %+v", app)
	}
	for _, want := range []string{"NOMAD_TASK_NAME", "LATE"} {
		if _, ok := app.Environment.Get(want); !ok {
			t.Errorf("--set-env %s (before and after the image) missing: %+v", want, app.Environment)
		}
	}
	have := map[string]bool{}
	for _, i := range app.Isolators {
		have[i.Name.String()] = true
	}
	for _, want := range []string{"resource/memory", "resource/cpu", "os/linux/cpu-shares"} {
		if !have[want] {
			t.Errorf("isolator %s missing: %v", want, have)
		}
	}
}

func catManifest(c *testutil.Ctx, uuid string) schema.PodManifest {
	c.T.Helper()
	r := c.ExpectOK(c.Rkt("cat-manifest", uuid))
	var pm schema.PodManifest
	if err := json.Unmarshal([]byte(r.Stdout), &pm); err != nil {
		c.T.Fatalf("cat-manifest: %v: %v", err, r)
	}
	return pm
}

// TestRunFlagPlacement checks rkt 1.30's rules for where flags go: app
// flags before any image are refused with rkt's message, rkt's deprecated
// spellings work with a notice, the hidden profiling flags are accepted,
// and --help lists the image flags.
func TestRunFlagPlacement(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	aci := c.InspectACI()
	for _, flag := range []string{"--exec=/x", "--memory=50M", "--caps-retain=CAP_CHOWN", "--cap-retain=CAP_CHOWN", "--user=1", "--signature=x.asc"} {
		name, _, _ := strings.Cut(flag, "=")
		for _, cmd := range []string{"run", "prepare"} {
			msg := c.ExpectFailure(c.Rkt(testutil.Insecure, cmd, flag, aci), name+" must follow an image")
			if strings.Contains(msg, "unknown flag") {
				t.Errorf("%s %s: %s", cmd, flag, msg)
			}
		}
	}
	c.ExpectFailure(c.Rkt(testutil.Insecure, "run", aci, "--exec=/a", "--exec=/b"), "--exec", "multiple times")
	c.ExpectFailure(c.Rkt(testutil.Insecure, "run", "--", "x"), "an image is required before any app arguments")
	if r := c.Expect(c.Rkt(testutil.Insecure, "prepare", "--store-only", "--no-store", aci), 254); !strings.Contains(r.Stderr, "both --store-only and --no-store") {
		t.Errorf("--store-only with --no-store: %v", r)
	}

	r := c.ExpectOK(c.Prepare("--store-only", aci, "--cap-retain=CAP_CHOWN,CAP_KILL", "--cpuprofile="+c.Path("cpu.prof")))
	for _, notice := range []string{"--store-only has been deprecated, please use --pull-policy=never", "--cap-retain has been deprecated, use --caps-retain instead"} {
		if !strings.Contains(r.Stderr, notice) {
			t.Errorf("no deprecation notice %q: %v", notice, r)
		}
	}
	pm := catManifest(c, strings.TrimSpace(r.Stdout))
	found := false
	for _, i := range pm.Apps[0].App.Isolators {
		found = found || i.Name.String() == "os/linux/capabilities-retain-set"
	}
	if !found {
		t.Errorf("--cap-retain did not set the retain set: %+v", pm.Apps[0].App.Isolators)
	}
	c.ExpectOK(c.Rkt("--memprofile="+c.Path("mem.prof"), "version"))

	for _, cmd := range []string{"run", "prepare"} {
		r := c.ExpectOK(c.Rkt(cmd, "--help"))
		for _, f := range []string{"--exec", "--user", "--memory", "--cpu-shares", "--caps-retain", "--seccomp", "--port", "--volume"} {
			if !strings.Contains(r.Stdout, "  "+f+" ") {
				t.Errorf("%s --help does not list %s: %v", cmd, f, r)
			}
		}
		for _, hidden := range []string{"--cpuprofile", "--cap-retain", "--store-only"} {
			if strings.Contains(r.Stdout, hidden+" ") {
				t.Errorf("%s --help lists hidden or deprecated %s", cmd, hidden)
			}
		}
	}
}

// TestFlagValidation checks that flags whose values reach files (the
// hostname, environment files) are refused in stage0 with exit 254 and a
// message naming the flag and the rule, on run, prepare and run-prepared.
func TestFlagValidation(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	aci := c.InspectACI()
	long := strings.Repeat("a", 65)
	for _, h := range []string{"a/b", "a\nb", long, "-a", "a..b", strings.Repeat("b", 64) + ".c"} {
		c.ExpectFailure(c.Run("--hostname="+h, aci), "--hostname")
		c.ExpectFailure(c.Prepare("--hostname="+h, aci), "--hostname")
	}
	uuid := c.MustPrepare(aci)
	c.ExpectFailure(c.Rkt("run-prepared", "--hostname=a_b", uuid), "--hostname", "RFC 1123")
	if st := c.Status(uuid); st.State != "prepared" {
		t.Errorf("a refused run-prepared changed the pod: %+v", st)
	}
	for _, e := range []string{"A B=1", "1A=x", "=x", "A=x\ny"} {
		msg := c.ExpectFailure(c.Run("--set-env="+e, aci), "--set-env")
		if strings.Contains(msg, "MarshalJSON") {
			t.Errorf("--set-env=%q: %s", e, msg)
		}
		c.ExpectFailure(c.Run(aci, "--environment="+e), "--environment")
	}
	c.ExpectFailure(c.Run("--set-env-file="+c.WriteFile("env", "GOOD=1\nBAD NAME=2\n"), aci), "--set-env-file", "line 2")
	r := c.ExpectOK(c.Run("--hostname=web-1.example.com", "--set-env=A.b-c=x y", aci, "--", "--print-env=A.b-c", "--print-hostname"))
	expectLine(t, r, "A.b-c=x y")
	if c.Stage1().Flavor == "host" {
		expectLine(t, r, "hostname=web-1.example.com")
	}
}

// TestAppSystemFiles checks what rkt gave every app whatever its image
// holds: /tmp (1777, writable by any user, also with a read-only rootfs),
// /run, /etc/hostname with the pod's hostname (stage1-host: fly shares the
// host's) and /etc/mtab -> /proc/self/mounts.
func TestAppSystemFiles(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	im := c.A.InspectImage("example.com/bare")
	var files []acibuild.File
	for _, f := range im.Files {
		if f.Path != "tmp" {
			files = append(files, f)
		}
	}
	im.Files = files
	aci := c.WriteImage(im)
	for _, ro := range []string{"false", "true"} {
		r := c.ExpectOK(c.Run("--hostname=sys-files", aci, "--user=user1", "--readonly-rootfs="+ro, "--",
			"--stat-file=/tmp", "--stat-file=/run", "--stat-file=/etc/mtab", "--write-file=/tmp/x:ok", "--read-file=/tmp/x"))
		for _, want := range []string{"/tmp: type=dir mode=1777", "/run: type=dir mode=0755", "/etc/mtab: type=symlink"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("readonly-rootfs=%s: no %q: %v", ro, want, r)
			}
		}
		expectLine(t, r, "<<<ok>>>")
	}
	r := c.ExpectOK(c.Run("--hostname=sys-files", aci, "--", "--read-file=/etc/mtab"))
	if !strings.Contains(r.Stdout, " /proc proc ") {
		t.Errorf("/etc/mtab does not list the mounts: %v", r)
	}
	if c.Stage1().Flavor == "host" {
		r := c.ExpectOK(c.Run("--hostname=sys-files", aci, "--", "--read-file=/etc/hostname"))
		if !strings.Contains(r.Stdout, "<<<sys-files\n>>>") {
			t.Errorf("/etc/hostname: want the pod's hostname: %v", r)
		}
	}
}

// TestPrivateUsersAndIPC checks that --private-users and --ipc are
// honoured or refused, never ignored: --ipc=parent keeps the host's IPC
// namespace, the default gives the pod its own on stage1-host, fly refuses
// a private one; --private-users is refused (exit 254, no pod left) by
// the stage1s that cannot give a user namespace.
func TestPrivateUsersAndIPC(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	aci := c.InspectACI("--print-ns=ipc")
	hostIPC, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Fatal(err)
	}
	c.ExpectFailure(c.Run("--ipc=shared", aci), "--ipc", "auto, private or parent")
	c.ExpectFailure(c.Prepare("--ipc=shared", aci), "--ipc")
	if c.Stage1().Flavor == "fly" {
		c.ExpectFailure(c.Run("--private-users", aci), "--private-users", "fly")
		c.ExpectFailure(c.Prepare("--private-users", aci), "--private-users", "fly")
	}
	if pods := c.List(); len(pods) != 0 {
		t.Errorf("refused commands left pods: %+v", pods)
	}
	r := c.ExpectOK(c.Run("--ipc=parent", aci))
	expectLine(t, r, "ns-ipc="+hostIPC)
	if c.Stage1().Flavor == "fly" {
		c.Expect(c.Run("--ipc=private", aci), 254)
		return
	}
	for _, mode := range []string{"auto", "private"} {
		r := c.ExpectOK(c.Run("--ipc="+mode, aci))
		if v, _ := value(r.Stdout, "ns-ipc"); v == "" || v == hostIPC {
			t.Errorf("--ipc=%s: the app is in the host's IPC namespace %q: %v", mode, hostIPC, r)
		}
	}
}

// TestPrivateUsers checks --private-users on stage1-host: the app is root
// in the pod's user namespace, and the host sees the pod's processes as
// the pod's shifted uids (the range stage0 recorded in the manifest), on
// a network of the pod's own too (nspawn does not join it in the user
// namespace: the stage1 does). gc removes the pod's shifted files.
func TestPrivateUsers(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.BootsSystemd | stage1test.Networks)
	const rootEtc = "/etc: type=dir mode=0755 uid=0 gid=0"
	aci := c.InspectACI("--print-user", "--print-ns=user", "--stat-file=/etc", "--write-file=/etc/pu:y",
		"--print-msg=ready", "--sleep=120s")
	for _, net := range []string{"host", "default"} {
		p, uuid := isoStart(c, "--private-users", "--net="+net, aci)
		out := p.Stdout()
		if v, _ := value(out, "uid"); !strings.HasPrefix(v, "0 euid=0 gid=0") {
			t.Errorf("--net=%s: the app is not root in its user namespace: %q", net, out)
		}
		if !strings.Contains(out, rootEtc) {
			t.Errorf("--net=%s: the app's files are not root's in the pod (want %q): %q", net, rootEtc, out)
		}
		userns, _ := value(out, "ns-user")
		host, err := os.Readlink("/proc/self/ns/user")
		if err != nil {
			t.Fatal(err)
		}
		if userns == "" || userns == host {
			t.Errorf("--net=%s: the app is in the host's user namespace %q: %q", net, host, out)
		}
		shift := privateUsersShift(t, c, uuid)
		uids := nsUIDs(userns)
		if len(uids) == 0 {
			t.Errorf("--net=%s: no process of the host is in the pod's user namespace %s", net, userns)
		}
		for pid, uid := range uids {
			if uid < shift || uid >= shift+0x10000 {
				t.Errorf("--net=%s: pod process %d has host uid %d, outside the pod's range %d:65536", net, pid, uid, shift)
			}
		}
		c.ExpectOK(c.Rkt("stop", uuid))
		if r := p.Wait(testutil.Scale(60 * time.Second)); r.Err != nil {
			t.Fatalf("--net=%s: the pod did not stop: %v", net, r)
		}
		c.ExpectOK(c.Rkt("rm", uuid))
		if _, err := os.Stat(c.PodDir(uuid)); err == nil {
			t.Errorf("--net=%s: rm left the pod's directory", net)
		}
	}
	// The shift is the pod's: the store's trees stay root's for the next.
	r := c.ExpectOK(c.Run("--net=host", aci, "--exec=/inspect", "--", "--stat-file=/etc"))
	expectLine(t, r, rootEtc+" size=4096")
}

// privateUsersShift is the first host uid of the pod's --private-users
// range, from the annotation stage0 wrote in the pod manifest.
func privateUsersShift(t *testing.T, c *testutil.Ctx, uuid string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.PodDir(uuid), "pod"))
	if err != nil {
		t.Fatal(err)
	}
	var pm struct {
		Annotations []struct{ Name, Value string }
	}
	if err := json.Unmarshal(b, &pm); err != nil {
		t.Fatal(err)
	}
	for _, a := range pm.Annotations {
		if a.Name == "coreos.com/rkt/private-users" {
			first, _, _ := strings.Cut(a.Value, ":")
			n, err := strconv.Atoi(first)
			if err != nil {
				t.Fatalf("private-users annotation %q: %v", a.Value, err)
			}
			return n
		}
	}
	t.Fatalf("no private-users annotation in the pod manifest: %s", b)
	return 0
}

// nsUIDs maps each host process in user namespace ns (a /proc/PID/ns/user
// link) to its real uid as the host sees it.
func nsUIDs(ns string) map[int]int {
	out := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); err != nil || l != ns {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
				if uid, err := strconv.Atoi(f[1]); err == nil {
					out[pid] = uid
				}
			}
		}
	}
	return out
}

// TestAppOutputForm checks that on stage1-host the apps' lines reach
// rkt's stdout in rkt's one form whatever the network ("[uptime]
// app[pid]: line", not without the uptime on some networks), and nothing
// else comes with them.
func TestAppOutputForm(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.BootsSystemd)
	aci := c.InspectACI("--print-msg=form-check")
	line := regexp.MustCompile(`^\[ *[0-9]+\.[0-9]+\] inspect\[[0-9]+\]: form-check$`)
	for _, net := range []string{"host", "none", "default"} {
		r := c.ExpectOK(c.Run("--net="+net, aci))
		if lines := strings.Split(strings.TrimRight(r.RawStdout, "\n"), "\n"); len(lines) != 1 || !line.MatchString(lines[0]) {
			t.Errorf("--net=%s: want the app's one line as %q: %q", net, line, r.RawStdout)
		}
	}
	// Every capability: the pod's systemd must not try to load autofs4
	// and print its failure (in colour) before the app's line.
	r := c.ExpectOK(c.RktWith(testutil.Opts{}, "--insecure-options=all", "run", "--stage1-path="+c.Stage1().ACI, aci))
	if lines := strings.Split(strings.TrimRight(r.RawStdout, "\n"), "\n"); len(lines) != 1 || !line.MatchString(lines[0]) {
		t.Errorf("--insecure-options=all: want the app's one line as %q: %q", line, r.RawStdout)
	}
}

// TestDockerLayersAndNames fetches two docker images sharing their base
// layer from a registry on 127.0.0.1: the second downloads only its own
// layer; each layer's progress is rkt's "Downloading sha256:<11 hex>
// [...]  N MB / N MB"; image rm finds each by the name it was fetched as,
// with and without docker://, and takes the kept layers along.
func TestDockerLayersAndNames(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	reg, host := startRegistry(t)
	inspect, err := os.ReadFile(c.A.Inspect)
	if err != nil {
		t.Fatal(err)
	}
	base := dockerLayer(t, map[string][]byte{"inspect": inspect, "etc/": nil, "etc/passwd": []byte(testutil.Passwd)}, "inspect")
	var imgs []v1.Image
	for _, n := range []string{"a", "b"} {
		top := dockerLayer(t, map[string][]byte{"etc/" + n: []byte(n)})
		img := fetchtest.Image(t, v1.Config{Entrypoint: []string{"/inspect"}, Cmd: []string{"--read-file=/etc/" + n}},
			v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, base, top)
		fetchtest.Push(t, host+"/test/"+n+":1.0", http.DefaultTransport, "", "", img)
		imgs = append(imgs, img)
	}
	progress := regexp.MustCompile(`(?m)^Downloading sha256:[0-9a-f]{11} \[=+\] +[0-9.]+ [KM]?B / [0-9.]+ [KM]?B$`)
	var ids []string
	for i, want := range []int{2, 1} {
		before := reg.LayerGets(t, imgs[i])
		r := c.ExpectOK(c.Rkt("--insecure-options=http,image", "fetch", fmt.Sprintf("docker://%s/test/%s:1.0", host, "ab"[i:i+1])))
		if n := reg.LayerGets(t, imgs[i]) - before; n != want {
			t.Errorf("image %d: %d layer downloads, want %d (the base layer once): %v", i, n, want, r)
		}
		if got := len(progress.FindAllString(r.Stderr, -1)); got != want {
			t.Errorf("image %d: %d progress lines in rkt's shape %q, want %d:\n%s", i, got, progress, want, r.Stderr)
		}
		ids = append(ids, c.FetchedID(r))
	}
	ran := c.ExpectOK(c.Rkt("--insecure-options=http,image", "run", "--stage1-path="+c.Stage1().ACI, ids[1]))
	if !strings.Contains(ran.Stdout, "<<<b>>>") {
		t.Errorf("the second image, made with the kept base layer, did not run right: %v", ran)
	}
	for i, name := range []string{"docker://" + host + "/test/a:1.0", host + "/test/b:1.0"} {
		r := c.ExpectOK(c.Rkt("image", "rm", name))
		expectLine(t, r, fmt.Sprintf("successfully removed aci for image: %q", ids[i]))
		if !strings.Contains(r.Stderr, "rkt image rm: 1 image(s) successfully removed") {
			t.Errorf("image rm %s: no summary line: %v", name, r)
		}
	}
	for _, id := range ids {
		if c.ImageByID(id) != nil {
			t.Errorf("image rm left %s in the store", id)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(c.Dir, "docker-layers", "blobs")); len(left) != 0 {
		t.Errorf("image rm of every docker image left %d kept layers", len(left))
	}
}
