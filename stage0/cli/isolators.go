package cli

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/appc/spec/schema/types"
)

// isolatorsFromFlags turns an app's isolator flags into appc isolators; they
// replace the image's isolators of the same name (appc precedence).
func isolatorsFromFlags(f appFlags) (types.Isolators, error) {
	var out types.Isolators
	for _, q := range []struct{ flag, v string }{{"--memory", f.Memory}, {"--cpu", f.CPU}} {
		if q.v != "" && !plainQuantity().MatchString(q.v) {
			return nil, usageErrorf("%s %q: want a number with an optional unit (500m, 50M, 1Gi)", q.flag, q.v)
		}
	}
	if f.Memory != "" {
		m, err := types.NewResourceMemoryIsolator(f.Memory, f.Memory)
		if err != nil {
			return nil, usageErrorf("--memory %q: %v", f.Memory, err)
		}
		out = append(out, m.AsIsolator())
	}
	if f.CPU != "" {
		c, err := types.NewResourceCPUIsolator(f.CPU, f.CPU)
		if err != nil {
			return nil, usageErrorf("--cpu %q: %v", f.CPU, err)
		}
		out = append(out, c.AsIsolator())
	}
	if f.CPUShares != "" {
		n, err := strconv.Atoi(f.CPUShares)
		if err != nil {
			return nil, usageErrorf("--cpu-shares %q: not a number", f.CPUShares)
		}
		c, err := types.NewLinuxCPUShares(n)
		if err != nil {
			return nil, usageErrorf("--cpu-shares %q: %v", f.CPUShares, err)
		}
		out = append(out, c.AsIsolator())
	}
	if f.OOMScoreAdj != "" {
		n, err := strconv.Atoi(f.OOMScoreAdj)
		if err != nil {
			return nil, usageErrorf("--oom-score-adj %q: not a number", f.OOMScoreAdj)
		}
		o, err := types.NewLinuxOOMScoreAdj(n)
		if err != nil {
			return nil, usageErrorf("--oom-score-adj %q: %v", f.OOMScoreAdj, err)
		}
		out = append(out, o.AsIsolator())
	}
	if f.CapsRetain != "" && f.CapsRemove != "" {
		return nil, usageErrorf("--caps-retain and --caps-remove cannot be used together")
	}
	if f.CapsRetain != "" {
		c, err := types.NewLinuxCapabilitiesRetainSet(capList(f.CapsRetain)...)
		if err != nil {
			return nil, usageErrorf("--caps-retain %q: %v", f.CapsRetain, err)
		}
		i, err := c.AsIsolator()
		if err != nil {
			return nil, usageErrorf("--caps-retain %q: %v", f.CapsRetain, err)
		}
		out = append(out, *i)
	}
	if f.CapsRemove != "" {
		c, err := types.NewLinuxCapabilitiesRevokeSet(capList(f.CapsRemove)...)
		if err != nil {
			return nil, usageErrorf("--caps-remove %q: %v", f.CapsRemove, err)
		}
		i, err := c.AsIsolator()
		if err != nil {
			return nil, usageErrorf("--caps-remove %q: %v", f.CapsRemove, err)
		}
		out = append(out, *i)
	}
	if f.Seccomp != "" {
		i, err := seccompIsolator(f.Seccomp)
		if err != nil {
			return nil, err
		}
		out = append(out, *i)
	}
	return out, nil
}

// plainQuantity is the quantity syntax the flags take: no exponents,
// which the quantity parser expands digit by digit (FuzzIsolators found
// "1000e030000000000000" hanging rkt). Compiled on first use: its counted
// repetitions take ~160 µs to compile, which every rkt command paid at
// start-up when it was a package variable.
var plainQuantity = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[0-9]{1,20}(\.[0-9]{1,20})?([mkKMGTPE]i?)?$`)
})

// capList accepts "CAP_NET_ADMIN,net_raw" and gives appc's CAP_ names.
func capList(s string) []string {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out = append(out, c)
	}
	return out
}

// seccompIsolator parses --seccomp mode=retain|remove[,errno=E],SYSCALL,...
func seccompIsolator(s string) (*types.Isolator, error) {
	var mode, errno string
	var calls []string
	for _, w := range strings.Split(s, ",") {
		switch {
		case strings.HasPrefix(w, "mode="):
			mode = strings.TrimPrefix(w, "mode=")
		case strings.HasPrefix(w, "errno="):
			errno = strings.TrimPrefix(w, "errno=")
		case w != "":
			calls = append(calls, w)
		}
	}
	if len(calls) == 0 {
		return nil, usageErrorf("--seccomp %q: no syscalls given", s)
	}
	var i *types.Isolator
	var err error
	switch mode {
	case "retain":
		var r *types.LinuxSeccompRetainSet
		if r, err = types.NewLinuxSeccompRetainSet(errno, calls...); err == nil {
			i, err = r.AsIsolator()
		}
	case "remove":
		var r *types.LinuxSeccompRemoveSet
		if r, err = types.NewLinuxSeccompRemoveSet(errno, calls...); err == nil {
			i, err = r.AsIsolator()
		}
	default:
		return nil, usageErrorf("--seccomp %q: mode must be retain or remove", s)
	}
	if err != nil {
		return nil, usageErrorf("--seccomp %q: %v", s, err)
	}
	return i, nil
}

func parseIP(s string) net.IP { return net.ParseIP(s) }
