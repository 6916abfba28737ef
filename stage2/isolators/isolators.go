// Package isolators turns an app's appc isolators into what confines it:
// resource limits for its cgroup (set from the host by the stage1) and the
// Confinement (capabilities, seccomp filter, no-new-privileges,
// oom_score_adj) that the stage2 helper applies to the app and to every
// `rkt enter` into it.
//
// Precedence follows appc: an isolator of the pod manifest's app replaces
// the image manifest's isolator of the same name; pod-level isolators (the
// pod manifest's own list) only carry resource limits for the whole pod.
package isolators

import (
	"errors"
	"fmt"
	"sort"

	"github.com/appc/spec/schema/types"
)

// Errors wrapped by Resolve, one per category.
var (
	// ErrContradiction is two isolators that cannot both hold (a retain
	// and a remove set of the same kind).
	ErrContradiction = errors.New("contradicting isolators")
	// ErrInvalid is an isolator whose value cannot be enforced: an empty
	// set, an unknown capability or syscall name, a bad errno.
	ErrInvalid = errors.New("invalid isolator")
)

// Limits are the resource limits of one cgroup; zero means no limit.
type Limits struct {
	MemoryBytes int64 `json:"memoryBytes,omitempty"`
	// CPUMilli is the CPU quota in thousandths of a CPU.
	CPUMilli  int64 `json:"cpuMilli,omitempty"`
	CPUShares int64 `json:"cpuShares,omitempty"`
}

// Zero is whether l limits nothing.
func (l Limits) Zero() bool { return l == Limits{} }

// Seccomp is a resolved seccomp set: syscall names with the groups
// expanded.
type Seccomp struct {
	// Retain is true for a whitelist, false for a blacklist.
	Retain   bool     `json:"retain"`
	Syscalls []string `json:"syscalls"`
	// Errno is what a filtered syscall returns (e.g. "EPERM"); empty
	// kills the process with SIGSYS, as appc says.
	Errno string `json:"errno,omitempty"`
}

// Confinement is what the stage2 helper applies to the app's processes.
type Confinement struct {
	// Capabilities is the bounding set (names as CAP_X), sorted;
	// Unrestricted leaves the caller's sets alone.
	Capabilities []string `json:"capabilities"`
	Unrestricted bool     `json:"unrestrictedCapabilities,omitempty"`
	// Seccomp is nil when seccomp is disabled.
	Seccomp         *Seccomp `json:"seccomp,omitempty"`
	NoNewPrivileges bool     `json:"noNewPrivileges,omitempty"`
	OOMScoreAdj     *int     `json:"oomScoreAdj,omitempty"`
}

// Options are the run's --insecure-options that lift restrictions.
type Options struct {
	DisableCapabilities bool
	DisableSeccomp      bool
}

// App is everything resolved for one app.
type App struct {
	Limits      Limits
	Confinement Confinement
	// Unknown names the isolators this executor does not enforce, for a
	// warning: appc lets an executor ignore them but not silently.
	Unknown []string
}

// DefaultCapabilities is appc's set when no capability isolator is given.
var DefaultCapabilities = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_KILL", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETFCAP", "CAP_SYS_CHROOT",
}

// DefaultSeccomp is the filter of an app without a seccomp isolator: rkt's
// blacklist, answering EPERM as docker's default profile does.
func DefaultSeccomp() *Seccomp {
	s, _ := expandSyscalls([]string{"@rkt/default-blacklist"})
	return &Seccomp{Retain: false, Syscalls: s, Errno: "EPERM"}
}

// Merge applies appc's precedence: app's isolators replace image's of the
// same name.
func Merge(image, app types.Isolators) types.Isolators {
	out := append(types.Isolators(nil), app...)
	for _, i := range image {
		if app.GetByName(i.Name) == nil {
			out = append(out, i)
		}
	}
	return out
}

// Resolve turns an app's isolators (already merged) into its limits and
// confinement.
func Resolve(is types.Isolators, opt Options) (*App, error) {
	out := &App{}
	c := &out.Confinement
	var capRetain, capRemove, scRetain, scRemove *types.Isolator
	for i := range is {
		iso := &is[i]
		name := iso.Name.String()
		switch v := iso.Value().(type) {
		case *types.ResourceMemory:
			if l := v.Limit(); l != nil {
				out.Limits.MemoryBytes = l.Value()
			}
		case *types.ResourceCPU:
			if l := v.Limit(); l != nil {
				out.Limits.CPUMilli = l.MilliValue()
			}
		case *types.LinuxCPUShares:
			out.Limits.CPUShares = int64(*v)
		case *types.LinuxOOMScoreAdj:
			n := int(*v)
			c.OOMScoreAdj = &n
		case *types.LinuxNoNewPrivileges:
			c.NoNewPrivileges = bool(*v)
		case *types.LinuxCapabilitiesRetainSet:
			capRetain = iso
		case *types.LinuxCapabilitiesRevokeSet:
			capRemove = iso
		case *types.LinuxSeccompRetainSet:
			scRetain = iso
		case *types.LinuxSeccompRemoveSet:
			scRemove = iso
		default:
			out.Unknown = append(out.Unknown, name)
		}
	}
	if capRetain != nil && capRemove != nil {
		return nil, fmt.Errorf("%s and %s: %w", types.LinuxCapabilitiesRetainSetName, types.LinuxCapabilitiesRevokeSetName, ErrContradiction)
	}
	if scRetain != nil && scRemove != nil {
		return nil, fmt.Errorf("%s and %s: %w", types.LinuxSeccompRetainSetName, types.LinuxSeccompRemoveSetName, ErrContradiction)
	}
	caps, err := resolveCaps(capRetain, capRemove)
	if err != nil {
		return nil, err
	}
	if opt.DisableCapabilities {
		c.Unrestricted = true
	} else {
		c.Capabilities = caps
	}
	sc, err := resolveSeccomp(scRetain, scRemove)
	if err != nil {
		return nil, err
	}
	if !opt.DisableSeccomp {
		c.Seccomp = sc
	}
	sort.Strings(out.Unknown)
	return out, nil
}

// PodLimits are the resource limits among the pod's own isolators, and
// the names of the others, which this executor does not enforce.
func PodLimits(is types.Isolators) (Limits, []string) {
	var l Limits
	var unknown []string
	for i := range is {
		switch v := is[i].Value().(type) {
		case *types.ResourceMemory:
			if q := v.Limit(); q != nil {
				l.MemoryBytes = q.Value()
			}
		case *types.ResourceCPU:
			if q := v.Limit(); q != nil {
				l.CPUMilli = q.MilliValue()
			}
		case *types.LinuxCPUShares:
			l.CPUShares = int64(*v)
		default:
			unknown = append(unknown, is[i].Name.String())
		}
	}
	return l, unknown
}

func resolveCaps(retain, remove *types.Isolator) ([]string, error) {
	switch {
	case retain != nil:
		names, err := capNames(retain.Value().(*types.LinuxCapabilitiesRetainSet).Set())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", retain.Name, err)
		}
		return names, nil
	case remove != nil:
		names, err := capNames(remove.Value().(*types.LinuxCapabilitiesRevokeSet).Set())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", remove.Name, err)
		}
		drop := map[string]bool{}
		for _, n := range names {
			drop[n] = true
		}
		var out []string
		for _, n := range DefaultCapabilities {
			if !drop[n] {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out, nil
	}
	out := append([]string(nil), DefaultCapabilities...)
	sort.Strings(out)
	return out, nil
}

func capNames(set []types.LinuxCapability) ([]string, error) {
	if len(set) == 0 {
		return nil, fmt.Errorf("empty capability set: %w", ErrInvalid)
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range set {
		n, err := CapabilityName(string(c))
		if err != nil {
			return nil, err
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func resolveSeccomp(retain, remove *types.Isolator) (*Seccomp, error) {
	var iso *types.Isolator
	var set types.LinuxSeccompSet
	switch {
	case retain != nil:
		iso, set = retain, retain.Value().(*types.LinuxSeccompRetainSet)
	case remove != nil:
		iso, set = remove, remove.Value().(*types.LinuxSeccompRemoveSet)
	default:
		return DefaultSeccomp(), nil
	}
	var entries []string
	for _, e := range set.Set() {
		entries = append(entries, string(e))
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: empty syscall set: %w", iso.Name, ErrInvalid)
	}
	calls, err := expandSyscalls(entries)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", iso.Name, err)
	}
	errno := string(set.Errno())
	if errno != "" {
		if _, err := ErrnoNumber(errno); err != nil {
			return nil, fmt.Errorf("%s: %w", iso.Name, err)
		}
	}
	return &Seccomp{Retain: retain != nil, Syscalls: calls, Errno: errno}, nil
}
