// Package stage1test is the conformance suite of the stage1 contract
// (common/stage1/CONTRACT.md), after containerd's snapshots testsuite: a
// stage1 implementation calls Suite from its package's tests with its image
// directory and what it declares it can do, and the suite checks what every
// stage1 must do and what those capabilities promise. The pod builder the
// suite uses (NewPod) lays out a pod directory as stage0 leaves it before
// exec'ing the run entrypoint; stage1 packages build their own tests on it.
package stage1test

import (
	"fmt"
	"strings"
)

// Caps says what a stage1 can do beyond what every stage1 must; tests gate
// on these, never on a stage1's name.
type Caps uint

const (
	// RecordsAppStatus: the stage1 writes rkt/status/<app> when an app
	// exits (fly cannot: the app replaces it).
	RecordsAppStatus Caps = 1 << iota
	// MultiApp: pods of more than one app.
	MultiApp
	// Enter: the image has an enter entrypoint.
	Enter
	// Networks: pods get network namespaces of their own (--net other
	// than host: none, CNI networks).
	Networks
	// BootsSystemd: the pod's PID 1 is systemd, with its journal (rkt
	// logs, journalctl -D), units, sd_notify, event handlers, a machined
	// registration and the apps' lines in journald's console form.
	BootsSystemd
	// Isolators: resource, capability and seccomp isolators are enforced
	// (not only warned about).
	Isolators
)

// Host and Fly are what this tree's stage1s declare (stage1/, stage1-fly/).
const (
	Host = RecordsAppStatus | MultiApp | Enter | Networks | BootsSystemd | Isolators
	Fly  = Enter
)

var capNames = []struct {
	c    Caps
	name string
}{
	{RecordsAppStatus, "app-status"},
	{MultiApp, "multi-app"},
	{Enter, "enter"},
	{Networks, "networks"},
	{BootsSystemd, "systemd"},
	{Isolators, "isolators"},
}

// Has reports whether every capability of want is in c.
func (c Caps) Has(want Caps) bool { return c&want == want }

// String lists the capabilities by name, comma-separated, as ParseCaps
// reads them.
func (c Caps) String() string {
	var names []string
	for _, n := range capNames {
		if c.Has(n.c) {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// ParseCaps reads a comma-separated list of capability names (String's
// form), e.g. from an environment variable naming a third stage1's.
func ParseCaps(s string) (Caps, error) {
	var c Caps
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		found := false
		for _, n := range capNames {
			if n.name == f {
				c |= n.c
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("stage1 capability %q: unknown (known: %s)", f, (^Caps(0)).String())
		}
	}
	return c, nil
}
