package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rktng/rkt/tests/testutil"
)

// rkt links no fetcher: what needs one is handed over to rkt-fetch next
// to it (stage0/cli/handover.go). Without rkt-fetch, what the store and
// the pods hold still works, and a fetch fails saying what is missing.
func TestHandOverToRktFetch(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	aci := c.InspectACI("--print-msg=from-the-store")
	id := c.Fetch(aci) // rkt hands fetch over to rkt-fetch

	// A remote image: the hand-over shows under --debug, and the failure
	// (nothing listens on port 1) is rkt-fetch's, as rkt's.
	r := c.Rkt("--debug", testutil.Insecure, "run", "docker://127.0.0.1:1/nothing")
	if !strings.Contains(r.Stderr, "handing over to "+filepath.Join(filepath.Dir(c.A.Rkt), "rkt-fetch")) {
		t.Errorf("no hand-over under --debug: %v", r)
	}
	c.Expect(r, 254)

	// rkt alone in a directory: no rkt-fetch beside it.
	lone := c.Path("lone/rkt")
	if err := os.MkdirAll(filepath.Dir(lone), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(c.A.Rkt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	l := *c
	a := *c.A
	a.Rkt = lone
	l.A = &a
	r = l.ExpectOK(l.Run(id))
	if !strings.Contains(r.Stdout, "from-the-store") {
		t.Errorf("run of a stored image without rkt-fetch: %v", r)
	}
	l.ExpectOK(l.Rkt("image", "list"))
	l.ExpectOK(l.Rkt("gc", "--grace-period=0s"))
	if _, err := os.Stat("/usr/lib/rkt/rkt-fetch"); err == nil {
		t.Log("/usr/lib/rkt/rkt-fetch is installed: a lone rkt finds it, the missing case is not checked")
		return
	}
	l.ExpectFailure(l.Rkt(testutil.Insecure, "fetch", aci), "fetch needs rkt-fetch", "/usr/lib/rkt/rkt-fetch")
}
