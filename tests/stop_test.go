package tests

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// TestStopAtRandomMoments stops stage1-host pods (rkt stop, or SIGTERM to
// rkt run) at random moments after they are running, from the first instant (the pod's systemd not yet
// booted) to well after the app is up: every stop must be graceful. The
// app gets SIGTERM, its post-stop handler runs, and `rkt run` exits with
// exactly the app's status as `rkt status` reports it: 7 for an app that
// traps SIGTERM and exits 7, 143 for a service that SIGTERM kills (or for
// the trapping app when SIGTERM came before it installed its handler,
// which it says by not having printed "ready").
func TestStopAtRandomMoments(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.BootsSystemd | stage1test.RecordsAppStatus)
	image := func(name string, args ...string) string {
		im := c.A.InspectImage("example.com/"+name, append(args, "--print-msg=ready", "--sleep=120s")...)
		im.AddMountPoint("vol", "/vol", false)
		im.Manifest.App.EventHandlers = []types.EventHandler{
			{Name: "post-stop", Exec: types.Exec{"/inspect", "--write-file=/vol/post-stop:ran"}},
		}
		return c.Fetch(c.WriteImage(im))
	}
	images := []string{image("traps", "--on-sigterm=7"), image("service")}

	const stops, workers = 20, 4
	rnd := rand.New(rand.NewSource(time.Now().UnixNano()))
	delays := make([]time.Duration, stops)
	for i := range delays {
		// A quarter right away (the pod still booting), the rest spread
		// over the boot and the first second of the app.
		if i%4 != 0 {
			delays[i] = time.Duration(rnd.Int63n(int64(1500 * time.Millisecond)))
		}
	}
	var mu sync.Mutex
	var wrong []string
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if msg := stopOnce(c, i, images[i%2], i%2 == 0, delays[i]); msg != "" {
					mu.Lock()
					wrong = append(wrong, msg)
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < stops; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	t.Logf("%d/%d stops graceful with matching statuses", stops-len(wrong), stops)
	if len(wrong) > 0 {
		t.Errorf("%d/%d stops wrong:\n%s", len(wrong), stops, strings.Join(wrong, "\n"))
	}
}

// stopOnce runs one pod, stops it delay after it is running, and says what
// was wrong, if anything.
func stopOnce(c *testutil.Ctx, i int, image string, traps bool, delay time.Duration) string {
	uuidFile := c.Path(fmt.Sprintf("uuid-%d", i))
	vol := c.Path(fmt.Sprintf("vol-%d", i))
	if err := os.MkdirAll(vol, 0o755); err != nil {
		return err.Error()
	}
	p := c.StartRun("--uuid-file-save="+uuidFile, "--volume=vol,kind=host,source="+vol, image)
	var uuid string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(uuidFile); err == nil && len(b) > 0 {
			uuid = strings.TrimSpace(string(b))
			if st := c.Rkt("status", uuid); strings.Contains(st.Stdout, "state=running") {
				break
			}
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Sprintf("stop %d: the pod did not run: %v", i, p.Wait(time.Second))
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(delay)
	what := fmt.Sprintf("stop %d (%v after running, trapping SIGTERM: %v)", i, delay.Round(time.Millisecond), traps)
	if i%3 == 2 {
		// SIGTERM to rkt run (a unit or Nomad stopping it) is a stop.
		what += " by SIGTERM to rkt run"
		if err := p.Signal(syscall.SIGTERM); err != nil {
			return fmt.Sprintf("%s: %v", what, err)
		}
	} else if r := c.Rkt("stop", uuid); r.Code != 0 {
		return fmt.Sprintf("%s: rkt stop: %v", what, r)
	}
	r := p.Wait(60 * time.Second)
	st := c.Status(uuid)
	var problems []string
	if len(st.Apps) != 1 || st.Apps[0].ExitCode == nil {
		problems = append(problems, fmt.Sprintf("status has no exit code: %+v", st.Apps))
	} else if code := *st.Apps[0].ExitCode; code != r.Code {
		problems = append(problems, fmt.Sprintf("rkt run exited %d, rkt status says %d", r.Code, code))
	}
	want := 143
	if strings.Contains(r.Stdout, "got=SIGTERM") {
		want = 7
	} else if traps && strings.Contains(r.Stdout, "ready") {
		problems = append(problems, "the app trapped SIGTERM but did not get it")
	}
	if r.Code != want {
		problems = append(problems, fmt.Sprintf("rkt run exited %d, want %d", r.Code, want))
	}
	if b, err := os.ReadFile(filepath.Join(vol, "post-stop")); err != nil || string(b) != "ran" {
		problems = append(problems, fmt.Sprintf("post-stop handler did not run: %v", err))
	}
	if len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s\n%v", what, strings.Join(problems, "; "), r)
}
