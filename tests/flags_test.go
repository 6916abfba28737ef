package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// TestVolumes checks host volumes (read-write and read-only) at the image's
// mount points, --mount of a volume at a new target, empty volumes with
// mode/uid/gid, and a missing host source refused.
func TestVolumes(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	host := c.Path("host-vol")
	if err := os.MkdirAll(host, 0o755); err != nil {
		t.Fatal(err)
	}
	c.WriteFile("host-vol/in", "from the host")
	im := c.A.InspectImage("example.com/volumes")
	im.AddMountPoint("data", "/data", false)
	id := c.Fetch(c.WriteImage(im))

	t.Run("host", func(t *testing.T) {
		c := c.Sub(t)
		r := c.ExpectOK(c.Run("--volume=data,kind=host,source="+host, id,
			"--", "--read-file=/data/in", "--write-file=/data/out:from the pod"))
		expectLine(t, r, "<<<from the host>>>")
		if b, err := os.ReadFile(filepath.Join(host, "out")); err != nil || string(b) != "from the pod" {
			t.Errorf("host volume: the pod's write is not on the host: %q %v", b, err)
		}
	})
	t.Run("host read-only", func(t *testing.T) {
		c := c.Sub(t)
		r := c.Run("--volume=data,kind=host,source="+host+",readOnly=true", id,
			"--", "--read-file=/data/in", "--write-file=/data/ro:nope")
		c.Expect(r, 1)
		if !strings.Contains(r.Output(), "read-only file system") {
			t.Errorf("write to a read-only volume: want EROFS: %v", r)
		}
		if _, err := os.Stat(filepath.Join(host, "ro")); err == nil {
			t.Errorf("the write to a read-only volume reached the host")
		}
	})
	t.Run("mount", func(t *testing.T) {
		c := c.Sub(t)
		r := c.ExpectOK(c.Run("--volume=v,kind=host,source="+host, "--mount=volume=v,target=/mnt/deep/v",
			c.InspectACI("--read-file=/mnt/deep/v/in")))
		expectLine(t, r, "<<<from the host>>>")
		// --mount after the image applies to that app.
		r = c.ExpectOK(c.Run("--volume=v,kind=host,source="+host,
			c.InspectACI("--read-file=/after/in"), "--mount=volume=v,target=/after"))
		expectLine(t, r, "<<<from the host>>>")
	})
	t.Run("empty", func(t *testing.T) {
		c := c.Sub(t)
		r := c.ExpectOK(c.Run("--volume=scratch,kind=empty,mode=0700,uid=1000,gid=1001",
			"--mount=volume=scratch,target=/scratch",
			c.InspectACI("--stat-file=/scratch", "--list-dir=/scratch", "--write-file=/scratch/f:x")))
		expectLine(t, r, "/scratch: type=dir mode=0700 uid=1000 gid=1001 size="+sizeOf(r.Stdout, "/scratch"))
		if d, _ := between(r.Stdout, "DIR<<<\n", ">>>DIR"); d != "" {
			t.Errorf("empty volume is not empty: %q", d)
		}
	})
	t.Run("missing source", func(t *testing.T) {
		c := c.Sub(t)
		missing := c.Path("no-such-dir")
		c.ExpectFailure(c.Run("--volume=data,kind=host,source="+missing, id), missing)
	})
	expectOnlyOverlays(c)
}

// sizeOf returns the size= field of a --stat-file line, which depends on
// the filesystem and is not what a test checks.
func sizeOf(out, path string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, path+": ") {
			if i := strings.Index(l, "size="); i >= 0 {
				return l[i+len("size="):]
			}
		}
	}
	return "?"
}

// TestEnvironment checks the app's environment: appc's defaults, the
// image's variables, --set-env, --set-env-file, --environment and
// --inherit-env, and their precedence.
func TestEnvironment(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	im := c.A.InspectImage("example.com/env", "--print-env=PATH,AC_APP_NAME,FROM_IMAGE,OVERRIDDEN,FROM_POD,FROM_FILE,FROM_APP,INHERITED")
	im.SetEnv("FROM_IMAGE", "image")
	im.SetEnv("OVERRIDDEN", "image")
	id := c.Fetch(c.WriteImage(im))
	envFile := c.WriteFile("env", "FROM_FILE=file\n")

	r := c.ExpectOK(c.RunWith(testutil.Opts{Env: []string{"INHERITED=yes"}},
		"--set-env=FROM_POD=pod", "--set-env=OVERRIDDEN=pod", "--set-env-file="+envFile,
		id, "--environment=FROM_APP=app"))
	for _, l := range []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"AC_APP_NAME=env", // named after the image name's last component
		"FROM_IMAGE=image",
		"OVERRIDDEN=pod",
		"FROM_POD=pod",
		"FROM_FILE=file",
		"FROM_APP=app",
		"INHERITED=<unset>",
	} {
		expectLine(t, r, l)
	}
	r = c.ExpectOK(c.RunWith(testutil.Opts{Env: []string{"INHERITED=yes"}}, "--inherit-env", id))
	expectLine(t, r, "INHERITED=yes")
	// rkt's own environment never leaks without --inherit-env.
	r = c.ExpectOK(c.RunWith(testutil.Opts{Env: []string{"LEAK_CHECK=1"}}, c.InspectACI("--print-env=LEAK_CHECK")))
	expectLine(t, r, "LEAK_CHECK=<unset>")
}

// TestExecAndArgs checks --exec, app arguments after `--` (appended to the
// image's exec) and the `---` terminator.
func TestExecAndArgs(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI("--print-msg=from-image"))

	r := c.ExpectOK(c.Run(id, "--", "--print-args", "plain arg"))
	expectLine(t, r, "from-image")
	expectLine(t, r, `args=["/inspect","--print-msg=from-image","--print-args","plain arg"]`)

	r = c.ExpectOK(c.Run(id, "--exec=/inspect", "--", "--print-args", "a", "---"))
	if strings.Contains(r.Stdout, "from-image") {
		t.Errorf("--exec did not replace the image's exec: %v", r)
	}
	expectLine(t, r, `args=["/inspect","--print-args","a"]`)

	// Pod flags before the image, app flags after it; --exec without args.
	r = c.ExpectOK(c.Run(id, "--exec=/inspect"))
	if strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("--exec=/inspect alone should print nothing: %v", r)
	}
}

// TestUserGroup checks --user/--group by name (resolved in the image's
// /etc/passwd and /etc/group) and by number, --working-dir, and the errors
// for an unknown user and a missing working directory.
func TestUserGroup(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI("--print-user", "--print-cwd"))

	r := c.ExpectOK(c.Run(id, "--user=user1", "--group=group2"))
	if v, _ := value(r.Stdout, "uid"); !strings.HasPrefix(v, "1000 euid=1000 gid=1001 egid=1001") {
		t.Errorf("--user=user1 --group=group2: %v", r)
	}
	expectLine(t, r, "cwd=/")
	r = c.ExpectOK(c.Run(id, "--user=1001", "--group=2000", "--working-dir=/tmp"))
	if v, _ := value(r.Stdout, "uid"); !strings.HasPrefix(v, "1001 euid=1001 gid=2000 egid=2000") {
		t.Errorf("--user=1001 --group=2000: %v", r)
	}
	expectLine(t, r, "cwd=/tmp")
	c.ExpectFailure(c.Run(id, "--user=nobody-here"), "nobody-here")
	expectAppStartFailure(c, c.Run(id, "--working-dir=/no/such/dir"), 200, "/no/such/dir")
}

// TestHostname checks --hostname and the default rkt-<uuid>, where the
// stage1 gives the pod its own UTS namespace (fly does not).
func TestHostname(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	if c.Stage1().Flavor == "fly" {
		// fly has no UTS namespace: the flag is accepted, the host's name stays.
		host, _ := os.Hostname()
		r := c.ExpectOK(c.Run("--hostname=ignored-by-fly", c.InspectACI("--print-hostname")))
		expectLine(t, r, "hostname="+host)
		return
	}
	r := c.ExpectOK(c.Run("--hostname=custom-host", c.InspectACI("--print-hostname")))
	expectLine(t, r, "hostname=custom-host")
	uuidFile := c.Path("uuid")
	r = c.ExpectOK(c.Run("--uuid-file-save="+uuidFile, c.InspectACI("--print-hostname")))
	expectLine(t, r, "hostname=rkt-"+string(readFile(t, uuidFile)))
}

// TestPodManifest runs a pod from --pod-manifest, for prepare and run.
func TestPodManifest(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI("--print-msg=from-image"))
	h, err := types.NewHash(id)
	if err != nil {
		t.Fatal(err)
	}
	pm := schema.BlankPodManifest()
	pm.Apps = schema.AppList{{
		Name:  *types.MustACName("custom"),
		Image: schema.RuntimeImage{Name: types.MustACIdentifier("example.com/inspect"), ID: *h},
		App: &types.App{
			Exec:        types.Exec{"/inspect", "--print-msg=from-pod-manifest", "--print-env=AC_APP_NAME,PM", "--exit-code=6"},
			User:        "0",
			Group:       "0",
			Environment: types.Environment{{Name: "PM", Value: "yes"}},
		},
	}}
	b, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	path := c.WriteBytes("pod.json", b)
	r := c.Expect(c.Run("--pod-manifest="+path), 6)
	for _, l := range []string{"from-pod-manifest", "AC_APP_NAME=custom", "PM=yes"} {
		expectLine(t, r, l)
	}
	uuid := c.MustPrepare("--pod-manifest=" + path)
	if p := c.Status(uuid); len(p.AppNames) != 1 || p.AppNames[0] != "custom" {
		t.Errorf("pod from --pod-manifest: app names %v", p.AppNames)
	}
	r = c.Expect(c.Rkt(testutil.Insecure, "run-prepared", uuid), 6)
	expectLine(t, r, "from-pod-manifest")
	c.ExpectFailure(c.Run("--pod-manifest="+c.WriteFile("bad-pod.json", `{"acKind":"PodManifest"`)), "bad-pod.json")
}

// TestOverlayIsolation checks that what an app writes stays in its pod:
// the rendered tree in the store is untouched, with overlay and with
// --no-overlay, and that --no-overlay mounts nothing.
func TestOverlayIsolation(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI("--stat-file=/etc/written", "--write-file=/etc/written:x", "--write-file=/inspect-marker:y"))
	for _, mode := range []string{"overlay", "no-overlay"} {
		t.Run(mode, func(t *testing.T) {
			c := c.Sub(t)
			args := []string{}
			if mode == "no-overlay" {
				args = append(args, "--no-overlay")
			}
			uuid := c.MustPrepare(append(args, id)...)
			_, overlay := os.Stat(filepath.Join(c.PodDir(uuid), "overlay-prepared"))
			if (overlay == nil) != (mode == "overlay") {
				t.Errorf("%s: overlay-prepared marker present=%v", mode, overlay == nil)
			}
			r := c.ExpectOK(c.Rkt(testutil.Insecure, "run-prepared", uuid))
			expectLine(t, r, "/etc/written: missing") // each pod starts from a clean rootfs
			if mode == "no-overlay" {
				for _, m := range testutil.Mounts(c.PodDir(uuid)) {
					if !isPodNetNS(m) {
						t.Errorf("--no-overlay pod has a mount: %s", m.Point)
					}
				}
			}
			trees, _ := filepath.Glob(filepath.Join(c.Dir, "cas", "tree", "*", "rootfs"))
			if len(trees) == 0 {
				t.Errorf("no rendered tree under cas/tree/*/rootfs")
			}
			for _, tr := range trees {
				for _, f := range []string{"etc/written", "inspect-marker"} {
					if _, err := os.Stat(filepath.Join(tr, f)); err == nil {
						t.Errorf("%s: the app's write reached the tree store: %s", mode, filepath.Join(tr, f))
					}
				}
			}
		})
	}
}

// TestInteractive passes stdin to the app with --interactive.
func TestInteractive(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	if c.Stage1().Caps.Has(stage1test.MultiApp) {
		c.ExpectFailure(c.Run("--interactive", c.InspectACI(), c.InspectACI()), "interactive")
	}
	if c.Stage1().Flavor == "host" {
		// The app reads the pod's console, which nspawn joins to rkt's
		// stdin only when that is a terminal: the stage1 refuses a pipe
		// rather than leave the app waiting for input forever.
		c.ExpectFailure(c.RunWith(testutil.Opts{Stdin: strings.NewReader("typed line\n")},
			"--interactive", c.InspectACI("--read-line")), "terminal")
		return
	}
	r := c.ExpectOK(c.RunWith(testutil.Opts{Stdin: strings.NewReader("typed line\nmore\n")},
		"--interactive", c.InspectACI("--read-line")))
	expectLine(t, r, "line=typed line")
}

// TestMultiAppOnFly checks that fly refuses a pod of two apps clearly.
func TestMultiAppOnFly(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	if c.Stage1().Caps.Has(stage1test.MultiApp) {
		t.Skip("checks how a stage1 of one app refuses two; this one runs pods of many")
	}
	a := c.WriteImage(c.A.InspectImage("example.com/one"))
	b := c.WriteImage(c.A.InspectImage("example.com/two"))
	c.Expect(c.Run(a, b), 254)
}

// TestUUIDPrefixes resolves pods by unique prefixes and refuses ambiguous
// and unknown ones.
func TestUUIDPrefixes(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI())
	byFirst := map[byte][]string{}
	var shared []string
	for i := 0; i < 40 && shared == nil; i++ {
		u := c.MustPrepare(id)
		byFirst[u[0]] = append(byFirst[u[0]], u)
		if len(byFirst[u[0]]) == 2 {
			shared = byFirst[u[0]]
		}
	}
	if shared == nil {
		t.Fatal("40 pods and no two UUIDs share a first digit: UUIDs are not random")
	}
	// The shortest unique prefix of each of the two.
	common := 0
	for common < len(shared[0]) && shared[0][common] == shared[1][common] {
		common++
	}
	c.ExpectFailure(c.Rkt("status", shared[0][:common]), "ambiguous")
	uniq := shared[0][:common+1]
	if p := c.Status(uniq); p.Name != shared[0] {
		t.Errorf("status %s: got pod %s, want %s", uniq, p.Name, shared[0])
	}
	c.ExpectOK(c.Rkt("cat-manifest", uniq))
	c.ExpectOK(c.Rkt("rm", uniq))
	if c.PodDir(shared[0]) != "" {
		t.Errorf("rm by prefix %s left the pod", uniq)
	}
	unknown := "ffffffff-0000-4000-8000-000000000000"
	if c.PodDir(unknown) == "" {
		for _, cmd := range [][]string{{"status"}, {"rm"}, {"stop"}, {"cat-manifest"}, {testutil.Insecure, "run-prepared"}, {"export"}} {
			args := append(cmd, unknown)
			if cmd[0] == "export" {
				args = append(args, c.Path("x.aci"))
			}
			c.ExpectFailure(c.Rkt(args...), unknown[:8])
		}
	}
}
