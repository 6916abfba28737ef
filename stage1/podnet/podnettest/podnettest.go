// Package podnettest holds what tests of pod networks share: a look at what
// the host holds that a pod's network may have left behind.
package podnettest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// traceSources are the commands that show what a CNI attachment adds to the
// host: links, routes, iptables rules and host-local IPAM reservations.
var traceSources = [][]string{
	{"ip", "-o", "link"},
	{"ip", "-4", "route"},
	{"iptables-save"},
	{"sh", "-c", "grep -r . /var/lib/cni/networks 2>/dev/null; true"},
}

// HostTraces lists the lines of those sources that mention any of keys
// (container IDs, pod IPs followed by a space, host-side link names). A
// pod torn down cleanly leaves none.
func HostTraces(keys []string) ([]string, error) {
	var out []string
	for _, c := range traceSources {
		b, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", strings.Join(c, " "), err, b)
		}
		for _, l := range strings.Split(string(b), "\n") {
			for _, k := range keys {
				if k != "" && strings.Contains(l, k) {
					out = append(out, l)
					break
				}
			}
		}
	}
	return out, nil
}

// ReservedByOther tells whether host-local has reserved ip (perhaps
// followed by a space, as HostTraces keys are) on the default network for
// a container not among ids. Pods of other tests share that subnet: an
// address a test's pod released may be another pod's already, and its
// route and reservation then are not the test's leftovers.
func ReservedByOther(ip string, ids []string) bool {
	b, err := os.ReadFile(filepath.Join("/var/lib/cni/networks/default", strings.TrimSpace(ip)))
	if err != nil {
		return false
	}
	id, _, _ := strings.Cut(string(b), "\n")
	for _, k := range ids {
		if strings.TrimSpace(id) == k {
			return false
		}
	}
	return true
}
