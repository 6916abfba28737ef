package tests

import (
	"strings"
	"testing"

	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// TestLogs reads a pod's app output back with `rkt logs` after the pod has
// exited, per app and in all, until gc removes it.
func TestLogs(t *testing.T) {
	c := testutil.New(t)
	c.RequireCaps(stage1test.BootsSystemd)
	c.RequireTool("journalctl")
	img := c.WriteImage(c.A.InspectImage("example.com/logs", "--print-msg=logged-line"))
	uuidFile := c.Path("uuid")
	c.ExpectOK(c.Run("--uuid-file-save="+uuidFile, img))
	u := strings.TrimSpace(string(readFile(t, uuidFile)))
	for _, args := range [][]string{{"logs", u}, {"logs", "--app=logs", u}, {"logs", "-n", "1", "--app=logs", u}} {
		out := c.ExpectOK(c.Rkt(args...))
		if !strings.Contains(out.Stdout, "logged-line") {
			t.Errorf("rkt %v: no app output in %q", args, out.Stdout)
		}
	}
	c.ExpectFailure(c.Rkt("logs", "--app=nosuchapp", u), "nosuchapp")
	c.ExpectOK(c.Rkt("gc", "--grace-period=0"))
	c.ExpectFailure(c.Rkt("logs", u), u[:8])
}
