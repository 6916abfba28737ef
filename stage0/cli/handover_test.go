package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// rkt's own binary (-tags nofetch) must not link what rkt-fetch is for:
// their package initialisation is what the split keeps off every start.
func TestNoFetchBuildLinksNoFetcher(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to list the build's packages:", err)
	}
	out, err := exec.Command("go", "list", "-tags", "nofetch", "-deps", "github.com/rktng/rkt/stage0/cmd/rkt").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	// The fetchers themselves, and the trees of what they bring.
	exact := map[string]bool{
		"github.com/rktng/rkt/aci/fetch": true, "github.com/rktng/rkt/aci/trust": true,
		"github.com/rktng/rkt/aci/docker": true, "github.com/rktng/rkt/aci/discovery": true,
	}
	trees := []string{"github.com/ProtonMail/go-crypto/openpgp", "github.com/google/go-containerregistry",
		"github.com/opencontainers/go-digest", "golang.org/x/net/html"}
	for _, pkg := range strings.Fields(string(out)) {
		bad := exact[pkg]
		for _, tr := range trees {
			bad = bad || pkg == tr || strings.HasPrefix(pkg, tr+"/")
		}
		if bad {
			t.Errorf("rkt (-tags nofetch) links %s", pkg)
		}
	}
}
