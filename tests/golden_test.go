package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// table lays rows out as rkt's tables were (text/tabwriter, minwidth 0,
// tabwidth 8, padding 1, tabs): the golden outputs below are given as
// cells, their layout is rkt's.
func table(rows ...[]string) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 1, '\t', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	return b.String()
}

// setPodTimes fixes a pod's creation and start times (the mtimes rkt
// reads them from), so that outputs are the same on every run.
func setPodTimes(t *testing.T, c *testutil.Ctx, uuid string, created, started time.Time) {
	t.Helper()
	dir := c.PodDir(uuid)
	createdFile := "pod-created"
	if _, err := os.Stat(filepath.Join(dir, createdFile)); err != nil {
		createdFile = "pod" // the manifest's mtime, when there is no pod-created
	}
	set := map[string]time.Time{createdFile: created}
	if !started.IsZero() {
		set["pod-started"] = started
	}
	for name, tm := range set {
		if err := os.Chtimes(filepath.Join(dir, name), tm, tm); err != nil {
			t.Fatal(err)
		}
	}
}

func expectOutput(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n--- got:\n%s--- want:\n%s", what, got, want)
	}
}

// TestGoldenOutputs checks rkt 1.30's exact output of the commands that
// scripts parse — fetch, image list, list, list --full, status, stop, gc,
// rm, image rm — with the pods' times fixed by the test.
func TestGoldenOutputs(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	utc := testutil.Opts{Env: []string{"TZ=UTC"}}
	rkt := func(args ...string) testutil.Result { return c.ExpectOK(c.RktWith(utc, args...)) }

	acis := map[string]string{}
	ids := map[string]string{}
	for _, n := range []string{"golden-a", "golden-b"} {
		acis[n] = c.WriteImage(c.A.InspectImage("example.com/"+n, "--exit-code=3"))
		r := c.Rkt(testutil.Insecure, "fetch", acis[n])
		ids[n] = c.FetchedID(r)
		expectOutput(t, "fetch", r.Stdout, ids[n][:39]+"\n")
	}
	r := rkt(testutil.Insecure, "fetch", "--full", acis["golden-a"])
	expectOutput(t, "fetch --full", r.Stdout, ids["golden-a"]+"\n")
	r = rkt("image", "list", "--fields=id,name", "--sort=name")
	expectOutput(t, "image list", r.Stdout, table([]string{"ID", "NAME"},
		[]string{ids["golden-a"][:19], "example.com/golden-a:1.0.0"},
		[]string{ids["golden-b"][:19], "example.com/golden-b:1.0.0"}))

	prepared := c.MustPrepare(acis["golden-a"], acis["golden-b"])
	saved := c.Path("exited.uuid")
	c.Expect(c.Run("--net=host", "--uuid-file-save="+saved, acis["golden-a"]), 3)
	exited := strings.TrimSpace(string(readFile(t, saved)))
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	setPodTimes(t, c, prepared, t0, time.Time{})
	setPodTimes(t, c, exited, t0, t0.Add(time.Second))
	const abs, abs1 = "2026-01-02 03:04:05 +0000 UTC", "2026-01-02 03:04:06 +0000 UTC"

	// Rows come in the order rkt lists the pods; each pod's rows are fixed.
	order := func(out string) []string {
		var uuids []string
		for _, l := range strings.Split(out, "\n")[1:] {
			if f := strings.Fields(l); len(f) > 0 && (strings.HasPrefix(prepared, f[0]) || strings.HasPrefix(exited, f[0])) {
				uuids = append(uuids, f[0])
			}
		}
		return uuids
	}
	rows := func(full bool, created, startedExited string) [][]string {
		head := []string{"UUID", "APP", "IMAGE NAME", "STATE", "CREATED", "STARTED", "NETWORKS"}
		id := func(string) []string { return nil }
		if full {
			head = []string{"UUID", "APP", "IMAGE NAME", "IMAGE ID", "STATE", "CREATED", "STARTED", "NETWORKS"}
			id = func(n string) []string { return []string{ids[n][:19]} }
		}
		short := func(u string) string {
			if full {
				return u
			}
			return u[:8]
		}
		row := func(cells ...[]string) []string {
			var out []string
			for _, c := range cells {
				out = append(out, c...)
			}
			return out
		}
		byPod := map[string][][]string{
			short(prepared): {
				row([]string{short(prepared), "golden-a", "example.com/golden-a:1.0.0"}, id("golden-a"), []string{"prepared", created, "", ""}),
				row([]string{"", "golden-b", "example.com/golden-b:1.0.0"}, id("golden-b"), []string{"", "", "", ""}),
			},
			short(exited): {
				row([]string{short(exited), "golden-a", "example.com/golden-a:1.0.0"}, id("golden-a"), []string{"exited", created, startedExited, ""}),
			},
		}
		out := [][]string{head}
		for _, u := range order(rkt("list", "--full="+fmt.Sprint(full)).Stdout) {
			out = append(out, byPod[u]...)
		}
		return out
	}
	r = rkt("list", "--full")
	expectOutput(t, "list --full", r.Stdout, table(rows(true, abs, abs1)...))

	now := time.Now()
	setPodTimes(t, c, prepared, now.Add(-3*time.Hour-30*time.Second), time.Time{})
	setPodTimes(t, c, exited, now.Add(-3*time.Hour-30*time.Second), now.Add(-49*time.Hour))
	r = rkt("list")
	expectOutput(t, "list", r.Stdout, table(rows(false, "3 hours ago", "2 days ago")...))
	setPodTimes(t, c, prepared, t0, time.Time{})
	setPodTimes(t, c, exited, t0, t0.Add(time.Second))

	r = rkt("status", prepared)
	expectOutput(t, "status of a prepared pod", r.Stdout, "state=prepared\ncreated="+abs+"\n")
	want := "state=exited\ncreated=" + abs + "\nstarted=" + abs1 + "\nnetworks=\n"
	if pid, err := os.ReadFile(filepath.Join(c.PodDir(exited), "pid")); err == nil {
		want += "pid=" + strings.TrimSpace(string(pid)) + "\n"
	}
	want += "exited=true\n"
	if c.Stage1().Caps.Has(stage1test.RecordsAppStatus) {
		want += "app-golden-a=3\n"
	}
	r = rkt("status", exited)
	expectOutput(t, "status of an exited pod", r.Stdout, want)

	r = rkt("stop", exited)
	expectOutput(t, "stop of a stopped pod", r.Stdout, fmt.Sprintf("pod %q is already stopped\n", exited))

	setPodTimes(t, c, prepared, time.Now(), time.Time{}) // not expired
	r = rkt("gc", "--grace-period=0s")
	expectOutput(t, "gc", r.Stdout, fmt.Sprintf("Garbage collecting pod %q\n", exited))
	var said []string
	for _, l := range strings.Split(r.Stderr, "\n") {
		if strings.HasPrefix(l, "rkt gc: ") {
			said = append(said, l)
		}
	}
	expectOutput(t, "gc's stderr", strings.Join(said, "\n"), fmt.Sprintf("rkt gc: moving pod %q to garbage", exited))

	r = rkt("rm", prepared)
	expectOutput(t, "rm", r.Stdout, fmt.Sprintf("%q\n", prepared))
	r = rkt("image", "rm", ids["golden-b"][:19])
	expectOutput(t, "image rm", r.Stdout, fmt.Sprintf("successfully removed aci for image: %q\n", ids["golden-b"]))
	expectOutput(t, "image rm's stderr", r.Stderr, "rkt image rm: 1 image(s) successfully removed\n")
}
