package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/stage2/isolators"
)

// PureV2 is whether hs is a pure cgroup v2 host: a cgroup2 hierarchy and
// no v1 controller hierarchy. There the pod's systemd enforces the limits
// on its own (delegated) subtree; on a hybrid or v1 host the stage1 sets
// them from the host in the v1 hierarchies.
func PureV2(hs []Hierarchy) bool {
	v2 := false
	for _, h := range hs {
		if isV1Controller(h) {
			return false
		}
		v2 = v2 || h.Key == ""
	}
	return v2
}

// Unified is the cgroup2 hierarchy of hs, if any.
func Unified(hs []Hierarchy) (Hierarchy, bool) {
	for _, h := range hs {
		if h.Key == "" {
			return h, true
		}
	}
	return Hierarchy{}, false
}

// RequireV2 fails unless the cgroup2 directory dir lets its children
// enable every controller l needs (its cgroup.controllers); where names
// the place for the error ("the unit's cgroup", "the root cgroup").
func RequireV2(dir, where string, l isolators.Limits) error {
	for _, c := range controllers(l) {
		if !v2Has(dir, c) {
			return fmt.Errorf("limit on %s: %s (%s) does not offer the %s controller: %w", c, where, dir, c, ErrNoController)
		}
	}
	return nil
}

// FromSystemService is whether the calling process runs as (the main
// process of) a system service rather than from a login session or a
// scope: what go-systemd's util.RunningFromSystemService decides with
// libsystemd's sd_pid_get_owner_uid, in pure Go (the stage1 is built
// without cgo). A process in a user's slice belongs to a login session; any
// other is a service's when it leads its own session, as systemd makes a
// service's main process do, and a command run from a shell, a scope or a
// service's child does not.
//
// leader is the process that would lead the service's session: the stage1
// itself, or its supervisor when the stage1 runs as the supervisor's child.
func FromSystemService(leader int) bool {
	paths, err := procCgroups(os.Getpid())
	if err != nil {
		return false
	}
	p, ok := paths["name=systemd"]
	if !ok {
		p, ok = paths[""]
	}
	if !ok {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, "user-") && strings.HasSuffix(part, ".slice") || strings.HasPrefix(part, "session-") && strings.HasSuffix(part, ".scope") {
			return false
		}
	}
	sid, err := unix.Getsid(0)
	return err == nil && sid == leader
}

// UnitCgroup is the cgroup2 directory of the calling process in h.
func UnitCgroup(h Hierarchy) string { return filepath.Join(h.Mount, h.Path) }
