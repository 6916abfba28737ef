package cli

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// profileEnv names a file to write a CPU profile of this rkt process to
// (`go tool pprof`), for finding where a slow command spends its time:
// RKT_CPUPROFILE=/tmp/cpu.out rkt --dir=... fetch big.aci. The profile is
// written when the command returns, so profile prepare rather than run
// (which becomes the stage1 by exec).
const profileEnv = "RKT_CPUPROFILE"

var stopProfile = func() {}

// startProfile starts the CPU profile RKT_CPUPROFILE asks for, if any.
func startProfile(stderr io.Writer) {
	path := os.Getenv(profileEnv)
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "rkt: warning: %s: %v\n", profileEnv, err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "rkt: warning: %s: %v\n", profileEnv, err)
		f.Close()
		return
	}
	stopProfile = func() {
		pprof.StopCPUProfile()
		f.Close()
		stopProfile = func() {}
	}
}

// startFlagProfile starts what rkt's hidden --cpuprofile asks for (rkt
// had --cpuprofile and --memprofile; they profile rkt itself, not the pod).
func (g *globals) startFlagProfile() error {
	if g.CPUProfile != "" && g.cpuProfile == nil {
		f, err := os.Create(g.CPUProfile)
		if err != nil {
			return fmt.Errorf("creating --cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("starting --cpuprofile: %w", err)
		}
		g.cpuProfile = f
	}
	return nil
}

// stopFlagProfile ends --cpuprofile and writes --memprofile's heap profile.
func (g *globals) stopFlagProfile() error {
	if g.cpuProfile != nil {
		pprof.StopCPUProfile()
		if err := g.cpuProfile.Close(); err != nil {
			return fmt.Errorf("writing --cpuprofile: %w", err)
		}
		g.cpuProfile = nil
	}
	if g.MemProfile == "" {
		return nil
	}
	f, err := os.Create(g.MemProfile)
	if err != nil {
		return fmt.Errorf("creating --memprofile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("writing --memprofile: %w", err)
	}
	return f.Close()
}
