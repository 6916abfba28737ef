package boot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage1/cgroups"
	"github.com/rktng/rkt/stage2"
	"github.com/rktng/rkt/stage2/isolators"
)

// CgroupBindDir (in the rootfs) holds each app's v1 cgroups, bound
// writable from the host: nspawn shows the pod the v1 hierarchies
// read-only (or not at all), so limits the pod set itself would not hold.
// The stage1 makes and limits system.slice/APP.service below the pod's
// cgroup in every v1 controller hierarchy; the stage2 helper moves itself
// there before it starts the app.
const CgroupBindDir = "rkt/cgroup"

// appLimits is what Place needs of one app.
type appLimits struct {
	name   string
	limits isolators.Limits
}

// AppCgroupPath is the app's cgroup below the pod's, the same path the
// pod's systemd gives the app's unit in its own (cgroup2) tree.
func AppCgroupPath(app string) string { return "system.slice/" + app + ".service" }

// confine resolves a's isolators into cfg and returns its limits; it
// warns on warn about isolators it does not enforce (appc: never
// silently).
func (a *app) confine(args stage1.RunArgs, cfg *stage2.App, keys []string, warn io.Writer) (isolators.Limits, error) {
	var image, own types.Isolators
	if a.image.App != nil {
		image = a.image.App.Isolators
	}
	if a.ra.App != nil {
		own = a.ra.App.Isolators
	}
	merged := isolators.Merge(image, own)
	res, err := isolators.Resolve(merged, isolators.Options{
		DisableCapabilities: args.DisableCaps,
		DisableSeccomp:      args.DisableSeccomp,
	})
	if err != nil {
		return isolators.Limits{}, fmt.Errorf("app %s: isolators: %w", a.name, err)
	}
	for _, u := range res.Unknown {
		fmt.Fprintf(warn, "stage1: app %s: isolator %s is not enforced by this stage1\n", a.name, u)
	}
	c := res.Confinement
	cfg.Confinement = &c
	cfg.DisablePaths = args.DisablePaths
	for _, k := range keys {
		cfg.CgroupDirs = append(cfg.CgroupDirs, "/"+filepath.Join(CgroupBindDir, a.name, k))
	}
	return res.Limits, nil
}

// v1Keys are the v1 controller hierarchies among hs: the ones that get
// app cgroups.
func v1Keys(hs []cgroups.Hierarchy) []string {
	var keys []string
	for _, h := range hs {
		if h.Key != "" && !strings.HasPrefix(h.Key, "name=") {
			keys = append(keys, h.Key)
		}
	}
	return keys
}

// allLimits is every kind of limit the pod and its apps ask for.
func (p *Plan) allLimits() isolators.Limits {
	return union(append(appsLimits(p.apps), p.podLimits)...)
}

func appsLimits(as []appLimits) []isolators.Limits {
	var out []isolators.Limits
	for _, a := range as {
		out = append(out, a.limits)
	}
	return out
}

// podLimits warns on warn about pod isolators that are not resource
// limits.
func podLimits(pm *schema.PodManifest, warn io.Writer) isolators.Limits {
	l, unknown := isolators.PodLimits(pm.Isolators)
	for _, u := range unknown {
		fmt.Fprintf(warn, "stage1: pod isolator %s is not enforced by this stage1\n", u)
	}
	return l
}

// placeApps runs once the process is in the pod's cgroups: it limits the
// pod, makes and limits each app's cgroups and binds them into the pod,
// and widens nspawn's confinement to the apps' isolators.
//
// On pure cgroup v2 the pod's systemd sets every limit itself (the units
// carry them): only the confinement is left to do here.
func (p *Plan) placeApps(rootfs string) error {
	nspawnArgs, err := p.nspawnConfinement(rootfs)
	if err != nil {
		return err
	}
	if p.host.v2 {
		p.insertArgs(nspawnArgs)
		return nil
	}
	hs, err := cgroups.Hierarchies(os.Getpid())
	if err != nil {
		return err
	}
	if !p.podLimits.Zero() {
		if err := cgroups.SetLimits(hs, p.podLimits); err != nil {
			return fmt.Errorf("pod isolators: %w", err)
		}
	}
	for _, a := range p.apps {
		cgs, err := cgroups.AppCgroups(hs, AppCgroupPath(a.name), a.limits)
		if err != nil {
			return fmt.Errorf("app %s: cgroups: %w", a.name, err)
		}
		for _, cg := range cgs {
			if p.uidShift >= 0 {
				if err := cgroups.Delegate(cg.Dir, p.uidShift); err != nil {
					return fmt.Errorf("app %s: %w", a.name, err)
				}
			}
			target := filepath.Join(CgroupBindDir, a.name, cg.Key)
			if err := os.MkdirAll(filepath.Join(rootfs, target), 0o755); err != nil {
				return fmt.Errorf("app %s: cgroups: %w", a.name, err)
			}
			nspawnArgs = append(nspawnArgs, bind{source: cg.Dir, target: "/" + target, nonRecurse: true}.arg())
		}
	}
	p.insertArgs(nspawnArgs)
	return nil
}

// insertArgs adds nspawn arguments before "--": what follows is the pod's
// systemd's.
func (p *Plan) insertArgs(args []string) {
	for i, a := range p.Args {
		if a == "--" {
			p.Args = append(p.Args[:i:i], append(args, p.Args[i:]...)...)
			break
		}
	}
}

// sysModule is left out of the full set: see nspawnConfinement.
const sysModule = "CAP_SYS_MODULE"

// nspawnConfinement widens nspawn's own confinement of the pod to what the
// apps' isolators ask for; the stage2 helper narrows it again per app.
// nspawn's bounding set lacks capabilities a retain set may name
// (CAP_NET_ADMIN, CAP_SYS_TIME...), which would be silently missing, and
// under --insecure-options=capabilities the app gets the full set, as
// asked, but for CAP_SYS_MODULE unless a retain set names it.
//
// nspawn's own seccomp filter is turned off (SYSTEMD_SECCOMP=0) when no
// app has a filter, where it would outlive --insecure-options=seccomp,
// and when every app has one of its own and no event handlers: then every
// process of the image's runs under the app's filter (stage2 applies it
// before the exec, rkt enter too, and it is inherited), and nspawn's would
// only filter the stage1's own systemd and journald, at a price of ~25 ms
// of CPU and 80 ms of wall time per pod start here (libseccomp compiling
// nspawn's allow-list). Handlers run with the app's credentials but not
// its filter, so a pod with handlers keeps nspawn's.
func (p *Plan) nspawnConfinement(rootfs string) ([]string, error) {
	var caps []string
	seen := map[string]bool{}
	all, filtered := false, false
	allFiltered, handlers := true, false
	for _, a := range p.apps {
		cfg, err := stage2.Load(filepath.Join(rootfs, stage2.ConfigPath(a.name)))
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", a.name, err)
		}
		handlers = handlers || len(cfg.PreStart) > 0 || len(cfg.PostStop) > 0
		c := cfg.Confinement
		if c == nil || c.Seccomp == nil {
			allFiltered = false
		}
		if c == nil {
			continue
		}
		all = all || c.Unrestricted
		filtered = filtered || c.Seccomp != nil
		for _, n := range c.Capabilities {
			if !seen[n] {
				seen[n] = true
				caps = append(caps, n)
			}
		}
	}
	var args []string
	switch {
	case all:
		args = append(args, "--capability=all")
		if !seen[sysModule] {
			// With it the pod's systemd tries to load autofs4 before
			// it reads its configuration, and says it failed, in
			// red, amid the apps' output on hosts without autofs.
			args = append(args, "--drop-capability="+sysModule)
		}
	case len(caps) > 0:
		args = append(args, "--capability="+strings.Join(caps, ","))
	}
	if len(p.apps) > 0 && (!filtered || allFiltered && !handlers) {
		p.Env = append(p.Env, "SYSTEMD_SECCOMP=0")
	}
	return args, nil
}
