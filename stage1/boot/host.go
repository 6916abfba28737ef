package boot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/stage1/cgroups"
	"github.com/rktng/rkt/stage1/machined"
	"github.com/rktng/rkt/stage1/units"
	"github.com/rktng/rkt/stage2/isolators"
)

// placement is where the pod's processes go in the host's cgroups, and so
// which unit machined records for the machine.
type placement int

const (
	// placeOwn: no systemd on the host (or a v1/hybrid one). The stage1
	// makes machine.slice/machine-NAME.scope below the caller's cgroup in
	// every hierarchy, moves itself there and runs nspawn --keep-unit in
	// it; registration is tried first (machined may be absent).
	placeOwn placement = iota
	// placeScope: systemd with pure cgroup v2, rkt run from a login
	// shell, a scope or a service's child. As rkt 1.30: nspawn has
	// machined create machine-NAME.scope in machine.slice, delegated to
	// the pod's systemd.
	placeScope
	// placeUnit: the same host, rkt as a system service's main process
	// (ExecStart=rkt run ...). As rkt 1.30: --keep-unit, the pod stays in
	// the service's cgroup, so that systemd's stop, restart and limits of
	// that unit are the pod's; nspawn splits it into payload/supervisor.
	placeUnit
)

// hostLayout is what the stage1 found out about the host.
type hostLayout struct {
	place placement
	hs    []cgroups.Hierarchy
	// v2: pure cgroup v2; the pod's systemd enforces every limit in its
	// delegated subtree (app unit directives, a pod slice drop-in).
	v2 bool
}

func detectHost(ctx context.Context) (hostLayout, error) {
	hs, err := cgroups.Hierarchies(os.Getpid())
	if err != nil {
		return hostLayout{}, err
	}
	h := hostLayout{hs: hs, v2: cgroups.PureV2(hs)}
	if h.v2 && machined.SystemdRunning(ctx) {
		h.place = placeScope
		// Under Supervise this is the supervisor's child: the
		// supervisor is what systemd started.
		leader := os.Getpid()
		if Supervised() {
			leader = os.Getppid()
		}
		if cgroups.FromSystemService(leader) {
			h.place = placeUnit
		}
	}
	return h, nil
}

// v2Resources are l as the pod's systemd takes them. The kernel refuses a
// quota under 1 ms per 100 ms period, which is 10m (1%).
func v2Resources(l isolators.Limits) units.Resources {
	r := units.Resources{MemoryBytes: l.MemoryBytes, CPUMilli: l.CPUMilli}
	if r.CPUMilli > 0 && r.CPUMilli < 10 {
		r.CPUMilli = 10
	}
	if l.CPUShares > 0 {
		r.CPUWeight = cgroups.SharesToWeight(l.CPUShares)
	}
	return r
}

// union is every kind of limit any of ls asks for.
func union(ls ...isolators.Limits) isolators.Limits {
	var u isolators.Limits
	for _, l := range ls {
		u.MemoryBytes = max(u.MemoryBytes, l.MemoryBytes)
		u.CPUMilli = max(u.CPUMilli, l.CPUMilli)
		u.CPUShares = max(u.CPUShares, l.CPUShares)
	}
	return u
}

// checkV2 refuses limits the pod's systemd could not enforce, before the
// pod starts: systemd ignores a directive whose controller its cgroup was
// not given. Under placeOwn it runs after Join, on the pod's own cgroup.
func (h hostLayout) checkV2(all isolators.Limits, podCgroup string) error {
	if !h.v2 || all.Zero() {
		return nil
	}
	u, _ := cgroups.Unified(h.hs)
	switch h.place {
	case placeScope:
		// machined's scope is delegated: systemd enables for it what
		// the root offers.
		return cgroups.RequireV2(u.Mount, "the host's root cgroup", all)
	case placeUnit:
		return cgroups.RequireV2(cgroups.UnitCgroup(u), "the cgroup of the unit rkt runs in (give the unit Delegate=yes)", all)
	default:
		if podCgroup == "" {
			return nil
		}
		return cgroups.RequireV2(podCgroup, "the pod's cgroup", all)
	}
}

// placeSystemd records where nspawn and machined will put the pod on a
// systemd host (nothing is moved: the pod's cgroup is systemd's to make).
func (p *Plan) placeSystemd(podDir, uuid string) error {
	u, ok := cgroups.Unified(p.host.hs)
	if !ok {
		return fmt.Errorf("no cgroup2 hierarchy: %w", cgroups.ErrNoController)
	}
	var rel string
	switch p.host.place {
	case placeScope:
		rel = filepath.Join(cgroups.Slice, cgroups.ScopeName(machined.MachineName(uuid)))
	default:
		// nspawn --keep-unit moves the pod into payload/ of the unit's
		// cgroup (and itself into supervisor/), then enables the
		// controllers for payload: only possible once no process is
		// left in the unit's own cgroup (cgroup v2's no-internal-process
		// rule), so the stage1's supervisor goes to supervisor/ first
		// when the pod has limits. Without limits it stays, so that the
		// unit's cgroup keeps no controllers enabled: systemd before
		// 254 starts ExecStop=/ExecStopPost= there, and fails them
		// (219/CGROUP) once it has (rkt's documented units use both).
		rel = filepath.Join(u.Path, "payload")
		if Supervised() && !p.allLimits().Zero() {
			sup := filepath.Join(cgroups.UnitCgroup(u), "supervisor")
			if err := os.Mkdir(sup, 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("creating cgroup %s: %w", sup, err)
			}
			if err := os.WriteFile(filepath.Join(sup, "cgroup.procs"), []byte(strconv.Itoa(os.Getppid())), 0); err != nil {
				return fmt.Errorf("moving the supervisor into %s: %w", sup, err)
			}
		}
	}
	rel = strings.TrimPrefix(rel, "/")
	return writePlacement(podDir, []string{filepath.Join(u.Mount, rel)}, rel)
}

func writePlacement(podDir string, dirs []string, sub string) error {
	if err := os.WriteFile(filepath.Join(podDir, cgroups.ListFile), []byte(strings.Join(dirs, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("recording cgroups: %w", err)
	}
	if err := os.WriteFile(filepath.Join(podDir, pod.SubcgroupFile), []byte(sub), 0o644); err != nil {
		return fmt.Errorf("recording subcgroup: %w", err)
	}
	return nil
}
