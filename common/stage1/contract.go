// Package stage1 defines the contract between stage0 (the rkt CLI) and a
// stage1 image: the manifest annotations naming the entrypoints, the
// interface version, the environment handed over, and the arguments of each
// entrypoint. Both sides build and parse arguments with the types here, so
// the contract lives in one place. CONTRACT.md beside this file is its prose.
package stage1

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// Annotation names in a stage1 image manifest. Each entrypoint annotation's
// value is an absolute path inside the stage1 rootfs.
const (
	AnnRun              = "coreos.com/rkt/stage1/run"
	AnnEnter            = "coreos.com/rkt/stage1/enter"
	AnnGC               = "coreos.com/rkt/stage1/gc"
	AnnStop             = "coreos.com/rkt/stage1/stop"
	AnnAppAdd           = "coreos.com/rkt/stage1/app/add"
	AnnAppRm            = "coreos.com/rkt/stage1/app/rm"
	AnnAppStart         = "coreos.com/rkt/stage1/app/start"
	AnnAppStop          = "coreos.com/rkt/stage1/app/stop"
	AnnInterfaceVersion = "coreos.com/rkt/stage1/interface-version"
	// AnnSystemdVersion is the major version of the systemd a stage1-host
	// image was built from (aci/acibuild/mkstage1); the run entrypoint
	// compares it with the host's systemd-nspawn.
	AnnSystemdVersion = "coreos.com/rkt/stage1/systemd-version"
	// AnnBuild identifies the sources a stage1 image of this tree was built
	// from (aci/acibuild/mkstage1). It is informational, except that
	// stage0 runs the fly run entrypoint in its own process when the
	// pod's stage1 is fly and the value equals BuildID (CONTRACT.md).
	AnnBuild = "coreos.com/rkt/stage1/build"
)

// BuildID is the build ID of the sources stage0 was built from, linked in
// by build.sh and the functional tests (-ldflags -X ...stage1.BuildID=...,
// the value of `mkstage1 build-id`). Empty in a plain `go build`: such a
// rkt execs every stage1.
var BuildID string

// InterfaceVersion is the highest interface version stage0 speaks. A stage1
// without the annotation is version 1. See CONTRACT.md for what each
// version adds to the run arguments.
const InterfaceVersion = 6

// ExitFailure is the exit status of rkt, of a stage1 entrypoint and of the
// stage2 helper when they fail themselves (bad input, a missing image, an
// isolator that cannot be applied), as opposed to an app's own status,
// which is passed through unchanged. rkt 1.30 used the same number.
const ExitFailure = 254

// MetadataPort is the TCP port of the metadata service that an app's
// AC_METADATA_URL points at (rkt's).
const MetadataPort = 18112

// MinInterfaceVersion is the oldest stage1 interface stage0 still drives.
const MinInterfaceVersion = 1

// Environment variables set by stage0 for the run entrypoint.
const (
	// EnvLockFD names the fd of the pod directory, flock'ed exclusively by
	// stage0. The stage1 keeps it open (and locked) while the pod lives.
	EnvLockFD = "RKT_LOCK_FD"
	// EnvDebug is "1" when stage0 runs with --debug.
	EnvDebug = "RKT_DEBUG"
	// EnvCommand is the rkt command that runs the pod ("rkt run" or
	// "rkt run-prepared"): the run entrypoint names it in FailureLine.
	EnvCommand = "RKT_COMMAND"
	// EnvSystemConfig is stage0's system configuration directory, where
	// the stage1 finds net.d networks besides those of --local-config.
	EnvSystemConfig = "RKT_SYSTEM_CONFIG"
)

// Files a stage1 writes in its rootfs for stage0 (rkt 1.30's contract),
// relative to the stage1 rootfs; the stage1 sees them at "/" + the name
// inside the pod.
const (
	// StatusDir holds <app>, the app's decimal exit code, once the app has
	// exited. A stage1 image must contain the directory (rkt 1.30's stage0
	// touches it); common/pod reads it (pod.StatusDir, AppStatusPath).
	StatusDir = "rkt/status"
	// EnvDir holds <app>, the app's environment (pod.AppEnvPath).
	EnvDir = "rkt/env"

	// SupervisorStatusFile, relative to the stage1 rootfs, is a symlink to
	// SupervisorReady once the pod's supervisor has started the apps:
	// rkt 1.30's `status --wait-ready` polls it.
	SupervisorStatusFile = "rkt/supervisor-status"
	SupervisorReady      = "ready"
)

// FailureLine is the one line a run entrypoint prints on stderr when the
// pod fails before its apps start, as stage0 prints its own errors:
// "rkt run: CAUSE". The stage1's own text (nspawn's, say) is printed
// before it only under --debug. getenv is os.Getenv.
func FailureLine(getenv func(string) string, cause string) string {
	cmd := getenv(EnvCommand)
	if cmd == "" {
		cmd = "rkt run"
	}
	return cmd + ": " + strings.Join(strings.Fields(cause), " ") + "\n"
}

// Well-known stage1 image names.
const (
	NameHost = "coreos.com/rkt/stage1-host"
	NameFly  = "coreos.com/rkt/stage1-fly"
)

// ErrUsage is wrapped by the parse functions on bad arguments.
var ErrUsage = errors.New("bad stage1 entrypoint arguments")

// RunArgs are the arguments of the run entrypoint:
//
//	run [--debug] [--net=LIST] [--interactive] [--private-users=SHIFT:N]
//	    [--mds-token=T] [--local-config=P] [--hostname=H]
//	    [--disable-capabilities-restriction] [--disable-paths]
//	    [--disable-seccomp] [--dns-conf-mode=resolv=M,hosts=M] [--mutable]
//	    [--ipc=MODE] UUID
type RunArgs struct {
	Debug          bool
	Net            []string // empty means "default"
	Interactive    bool
	PrivateUsers   string
	MDSToken       string
	LocalConfig    string
	Hostname       string
	DisableCaps    bool
	DisablePaths   bool
	DisableSeccomp bool
	DNSConfMode    DNSConfMode
	Mutable        bool
	IPC            string
	UUID           string
}

// DNSConfMode says where the pod's resolv.conf and hosts come from:
// "host" (bind the host's), "stage0" (stage0 wrote pod-level files in the
// stage1 rootfs at etc/rkt-resolv.conf / etc/rkt-hosts), "none" (leave the
// image's), "default" (stage1 decides: the image's file, else a generated one).
type DNSConfMode struct {
	Resolv string
	Hosts  string
}

// String renders the mode as the --dns-conf-mode flag value.
func (m DNSConfMode) String() string {
	return "resolv=" + orDefault(m.Resolv) + ",hosts=" + orDefault(m.Hosts)
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// ParseDNSConfMode parses "resolv=M,hosts=M".
func ParseDNSConfMode(s string) (DNSConfMode, error) {
	var m DNSConfMode
	if s == "" {
		return m, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return m, fmt.Errorf("dns-conf-mode %q: %w", s, ErrUsage)
		}
		switch v {
		case "host", "stage0", "none", "default":
		default:
			return m, fmt.Errorf("dns-conf-mode %q: unknown mode %q: %w", s, v, ErrUsage)
		}
		switch k {
		case "resolv":
			m.Resolv = v
		case "hosts":
			m.Hosts = v
		default:
			return m, fmt.Errorf("dns-conf-mode %q: unknown key %q: %w", s, k, ErrUsage)
		}
	}
	return m, nil
}

// Args renders the run arguments for a stage1 of the given interface
// version; arguments a version does not know are left out.
func (a RunArgs) Args(version int) []string {
	var out []string
	if a.Debug {
		out = append(out, "--debug")
	}
	net := "default"
	if len(a.Net) > 0 {
		net = strings.Join(a.Net, ",")
	}
	out = append(out, "--net="+net)
	if a.Interactive {
		out = append(out, "--interactive")
	}
	if a.PrivateUsers != "" {
		out = append(out, "--private-users="+a.PrivateUsers)
	}
	if a.MDSToken != "" {
		out = append(out, "--mds-token="+a.MDSToken)
	}
	if a.LocalConfig != "" {
		out = append(out, "--local-config="+a.LocalConfig)
	}
	// The version gates follow rkt 1.30's stage0 so that old stage1 images
	// keep working: hostname from 2, insecure options from 3, dns-conf-mode
	// from 4, mutable from 5, ipc from 6.
	if version >= 2 && a.Hostname != "" {
		out = append(out, "--hostname="+a.Hostname)
	}
	if version >= 3 {
		if a.DisableCaps {
			out = append(out, "--disable-capabilities-restriction")
		}
		if a.DisablePaths {
			out = append(out, "--disable-paths")
		}
		if a.DisableSeccomp {
			out = append(out, "--disable-seccomp")
		}
	}
	if version >= 4 && (orDefault(a.DNSConfMode.Resolv) != "default" || orDefault(a.DNSConfMode.Hosts) != "default") {
		out = append(out, "--dns-conf-mode="+a.DNSConfMode.String())
	}
	if version >= 5 && a.Mutable {
		out = append(out, "--mutable")
	}
	if version >= 6 && a.IPC != "" {
		out = append(out, "--ipc="+a.IPC)
	}
	return append(out, a.UUID)
}

// ParseRunArgs parses the run entrypoint's arguments (without argv[0]).
func ParseRunArgs(args []string) (RunArgs, error) {
	var a RunArgs
	var net, dns string
	const entry = "run"
	fs := newFlagSet(entry)
	fs.BoolVar(&a.Debug, "debug", false, "")
	fs.StringVar(&net, "net", "default", "")
	fs.BoolVar(&a.Interactive, "interactive", false, "")
	fs.StringVar(&a.PrivateUsers, "private-users", "", "")
	fs.StringVar(&a.MDSToken, "mds-token", "", "")
	fs.StringVar(&a.LocalConfig, "local-config", "", "")
	fs.StringVar(&a.Hostname, "hostname", "", "")
	fs.BoolVar(&a.DisableCaps, "disable-capabilities-restriction", false, "")
	fs.BoolVar(&a.DisablePaths, "disable-paths", false, "")
	fs.BoolVar(&a.DisableSeccomp, "disable-seccomp", false, "")
	fs.StringVar(&dns, "dns-conf-mode", "", "")
	fs.BoolVar(&a.Mutable, "mutable", false, "")
	fs.StringVar(&a.IPC, "ipc", "", "")
	uuid, err := parseWithUUID(fs, entry, args)
	if err != nil {
		return a, err
	}
	a.UUID = uuid
	if net != "" {
		a.Net = strings.Split(net, ",")
	}
	a.DNSConfMode, err = ParseDNSConfMode(dns)
	return a, err
}

// EnterArgs are the arguments of the enter entrypoint:
//
//	enter --pid=PID [--appname=entry] -- CMD [ARGS...]
type EnterArgs struct {
	PID     int
	AppName string
	Cmd     []string
}

// Args renders the enter arguments.
func (a EnterArgs) Args() []string {
	out := []string{"--pid=" + strconv.Itoa(a.PID)}
	if a.AppName != "" {
		out = append(out, "--appname="+a.AppName)
	}
	out = append(out, "--")
	return append(out, a.Cmd...)
}

// ParseEnterArgs parses the enter entrypoint's arguments.
func ParseEnterArgs(args []string) (EnterArgs, error) {
	var a EnterArgs
	fs := newFlagSet("enter")
	fs.IntVar(&a.PID, "pid", 0, "")
	fs.StringVar(&a.AppName, "appname", "", "")
	if err := fs.Parse(args); err != nil {
		return a, fmt.Errorf("enter: %v: %w", err, ErrUsage)
	}
	a.Cmd = fs.Args()
	if a.PID <= 0 {
		return a, fmt.Errorf("enter: --pid is required: %w", ErrUsage)
	}
	if len(a.Cmd) == 0 {
		return a, fmt.Errorf("enter: no command: %w", ErrUsage)
	}
	return a, nil
}

// GCArgs are the arguments of the gc entrypoint:
//
//	gc [--debug] [--local-config=P] UUID
type GCArgs struct {
	Debug       bool
	LocalConfig string
	UUID        string
}

// Args renders the gc arguments; --local-config needs version 5.
func (a GCArgs) Args(version int) []string {
	var out []string
	if a.Debug {
		out = append(out, "--debug")
	}
	if a.LocalConfig != "" && version >= 5 {
		out = append(out, "--local-config="+a.LocalConfig)
	}
	return append(out, a.UUID)
}

// ParseGCArgs parses the gc entrypoint's arguments.
func ParseGCArgs(args []string) (GCArgs, error) {
	var a GCArgs
	const entry = "gc"
	fs := newFlagSet(entry)
	fs.BoolVar(&a.Debug, "debug", false, "")
	fs.StringVar(&a.LocalConfig, "local-config", "", "")
	uuid, err := parseWithUUID(fs, entry, args)
	a.UUID = uuid
	return a, err
}

// StopArgs are the arguments of the stop entrypoint:
//
//	stop [--force] UUID
type StopArgs struct {
	Force bool
	UUID  string
}

// Args renders the stop arguments.
func (a StopArgs) Args() []string {
	if a.Force {
		return []string{"--force", a.UUID}
	}
	return []string{a.UUID}
}

// ParseStopArgs parses the stop entrypoint's arguments.
func ParseStopArgs(args []string) (StopArgs, error) {
	var a StopArgs
	const entry = "stop"
	fs := newFlagSet(entry)
	fs.BoolVar(&a.Force, "force", false, "")
	uuid, err := parseWithUUID(fs, entry, args)
	a.UUID = uuid
	return a, err
}

func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.Usage = func() {}
	fs.SetOutput(discard{})
	return fs
}

func parseWithUUID(fs *pflag.FlagSet, name string, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", fmt.Errorf("%s: %v: %w", name, err, ErrUsage)
	}
	if fs.NArg() != 1 {
		return "", fmt.Errorf("%s: want exactly one UUID, got %q: %w", name, fs.Args(), ErrUsage)
	}
	return fs.Arg(0), nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
