// Package boot is the run entrypoint of the stage1-host: it turns the pod
// manifest into the pod's machine (hostname, machine-id, one stage2 config
// and one unit set per app), puts itself in the pod's own cgroups, and execs
// systemd-nspawn to boot the pod's systemd.
//
// Prepare does everything that can fail with a clear message and returns
// the Plan; Exec carries it out and returns only on failure. The pod's
// network (stage1/podnet) is set up in Prepare, before nspawn, which joins
// it.
package boot

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage1/cgroups"
	"github.com/rktng/rkt/stage1/machined"
	"github.com/rktng/rkt/stage1/units"
	"github.com/rktng/rkt/stage2"
	"github.com/rktng/rkt/stage2/isolators"
)

// Files of the stage1-host in the pod directory and its rootfs.
const (
	// CgroupsFile lists the pod's cgroup directories, one per line, for gc.
	CgroupsFile = "cgroups"
	// InteractiveFlag (in the rootfs) tells stage2 that the console is
	// the user's terminal.
	InteractiveFlag = "rkt/interactive"
	// JournalRunDir (in the rootfs) is bound over the pod's
	// /run/systemd/journal, holding journald's sockets and the "flushed"
	// flag that makes journald write to /var/log/journal from its first
	// message: no flush service in the pod's boot path.
	JournalRunDir = "rkt/journal-run"
)

// MachineName is the pod's machine name for nspawn and machined.
func MachineName(uuid string) string { return "rkt-" + uuid }

// Plan is the exec of systemd-nspawn that boots the pod.
type Plan struct {
	Path string
	Args []string
	Env  []string
	// Register is whether nspawn registers the pod with machined.
	Register bool

	apps      []appLimits
	podLimits isolators.Limits
	rootfs    string
	host      hostLayout
	// uidShift is the host uid of the pod's root under --private-users,
	// -1 without a user namespace.
	uidShift int
	// netns is the pod's network namespace, joined before the exec when
	// nspawn cannot join it (inside a user namespace it may not).
	netns string
}

// Prepare writes the pod's machine into the stage1 rootfs of podDir.
func Prepare(args stage1.RunArgs, podDir string) (*Plan, error) {
	podDir, err := filepath.Abs(podDir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(podDir, pod.ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("reading pod manifest: %w", err)
	}
	pm := &schema.PodManifest{}
	if err := pm.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("parsing pod manifest: %w", err)
	}
	apps, err := loadApps(podDir, pm)
	if err != nil {
		return nil, err
	}
	if args.Interactive && len(apps) != 1 {
		return nil, fmt.Errorf("--interactive needs exactly one app, the pod has %d", len(apps))
	}
	// The app reads the pod's console, which nspawn joins to rkt's stdin
	// only when that is a terminal: from a pipe or a file the app would
	// wait for input forever.
	if args.Interactive && !isTerminal(0) {
		return nil, errors.New("--interactive needs a terminal on stdin")
	}
	id, err := parseUUID(args.UUID)
	if err != nil {
		return nil, err
	}
	rootfs := pod.Stage1RootfsPath(podDir)
	hostname := args.Hostname
	if hostname == "" {
		hostname = MachineName(args.UUID)
	}
	if err := writeMachine(rootfs, hostname, hex.EncodeToString(id[:]), args.Interactive); err != nil {
		return nil, err
	}

	pn, err := setupNetwork(args, podDir, pm, apps)
	if err != nil {
		return nil, err
	}
	cniResolv, err := resolvFromCNI(rootfs, args.DNSConfMode, pn)
	if err != nil {
		return nil, err
	}
	dnsMode := args.DNSConfMode
	if cniResolv {
		dnsMode.Resolv = "stage0"
	}
	if err := hostsWithPodIP(rootfs, dnsMode, hostname, pn.podIP()); err != nil {
		return nil, err
	}
	volumes := map[string]types.Volume{}
	for _, v := range pm.Volumes {
		volumes[v.Name.String()] = v
	}
	extraEnv := map[string]string{}
	if u := metadataURL(args, pn); u != "" {
		extraEnv["AC_METADATA_URL"] = u
	}
	host, err := detectHost(context.Background())
	if err != nil {
		return nil, err
	}
	keys := v1Keys(host.hs)
	var limits []appLimits
	var binds []bind
	var pu units.Pod
	pu.Interactive = args.Interactive
	notify := false
	for _, a := range apps {
		if err := a.resolveMounts(podDir, volumes); err != nil {
			return nil, err
		}
		binds = append(binds, a.mounts...)
		nb, err := nameFiles(podDir, a, dnsMode, hostname, pn.podIP())
		if err != nil {
			return nil, err
		}
		binds = append(binds, nb...)
		cfg, err := a.stage2Config(podDir, extraEnv)
		if err != nil {
			return nil, err
		}
		l, err := a.confine(args, cfg, keys)
		if err != nil {
			return nil, err
		}
		limits = append(limits, appLimits{name: a.name, limits: l})
		if err := cfg.Save(filepath.Join(rootfs, stage2.ConfigPath(a.name))); err != nil {
			return nil, err
		}
		if err := writeEnvFile(pod.AppEnvPath(podDir, a.name), cfg.Environment); err != nil {
			return nil, err
		}
		notify = notify || cfg.Notify
		pu.Apps = append(pu.Apps, units.App{
			Name:      a.name,
			ImageName: a.image.Name.String(),
			Notify:    cfg.Notify,
			PostStop:  len(cfg.PostStop) > 0,
		})
		if host.v2 {
			pu.Apps[len(pu.Apps)-1].Resources = v2Resources(l)
		}
	}
	pl := podLimits(pm)
	if err := host.checkV2(union(append(appsLimits(limits), pl)...), ""); err != nil {
		return nil, err
	}
	if host.v2 {
		pu.Resources = v2Resources(pl)
	}
	if err := units.Write(filepath.Join(rootfs, "etc/systemd/system"), pu); err != nil {
		return nil, err
	}

	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		return nil, fmt.Errorf("systemd-nspawn not found (install systemd-container): %w", err)
	}
	if err := checkNspawn(nspawn, podDir, args.PrivateUsers != "", os.Stderr); err != nil {
		return nil, err
	}
	shift, err := uidShift(args.PrivateUsers)
	if err != nil {
		return nil, err
	}
	if shift >= 0 {
		if err := checkUserNamespaces(); err != nil {
			return nil, err
		}
	}
	plan := &Plan{Path: nspawn, apps: limits, podLimits: pl, rootfs: rootfs, host: host, uidShift: shift}
	plan.Args = []string{
		"systemd-nspawn",
		"--boot",
		"--quiet",
		"--link-journal=try-guest",
		"--machine=" + MachineName(args.UUID),
		"--hostname=" + hostname,
		"--directory=" + rootfs,
		"--bind=" + escapeBind(filepath.Join(rootfs, JournalRunDir)) + ":/run/systemd/journal",
	}
	if args.Interactive && isTerminal(0) {
		plan.Args = append(plan.Args, "--console=interactive")
	} else {
		plan.Args = append(plan.Args, "--console=read-only")
	}
	if notify {
		plan.Args = append(plan.Args, "--notify-ready=yes")
	}
	if shift >= 0 {
		// nspawn shifts the rootfs's ownership to the pod's range. The
		// directory it makes for the journal bind in /run would be the
		// host root's, where the pod's root may not write: a tmpfs
		// (nspawn shifts its owner) holds it instead. nspawn, in the new
		// user namespace, may not join a network namespace of the
		// host's: it is joined before the exec, as rkt 1.30's stage1 did.
		plan.Args = append(plan.Args, "--private-users="+args.PrivateUsers, "--private-users-ownership=chown",
			"--tmpfs=/run/systemd:mode=0755")
		if pn.res != nil {
			plan.netns = pn.res.NetNS
		}
	}
	if plan.netns == "" {
		plan.Args = append(plan.Args, pn.nspawn...)
	}
	if !slices.Contains(pn.nspawn, "--private-network") {
		b, err := samePrefixes(rootfs)
		if err != nil {
			return nil, err
		}
		binds = append(binds, b...)
	}
	for _, b := range binds {
		plan.Args = append(plan.Args, b.arg())
	}
	// Arguments after the directory go to the pod's systemd.
	plan.Args = append(plan.Args, "--")
	if args.Debug {
		plan.Args = append(plan.Args, "--log-level=debug", "--log-target=console", "--show-status=1")
	}
	plan.Env = append(os.Environ(),
		// cgroup2 inside the pod whatever the host's layout: on a hybrid
		// host the pod's systemd otherwise prints errors about the v1
		// controllers nspawn mounts read-only, on rkt's stdout.
		"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1",
	)
	switch args.IPC {
	case "", "auto", "private":
	case "parent":
		// As rkt's stage1: nspawn stays in the host's IPC namespace.
		plan.Env = append(plan.Env, "SYSTEMD_NSPAWN_SHARE_NS_IPC=true")
	default:
		return nil, fmt.Errorf("--ipc=%s: want auto, private or parent", args.IPC)
	}
	if !args.Debug {
		// nspawn's notices ("Trying to halt container...") are not the
		// apps' output; its warnings and errors still show.
		plan.Env = append(plan.Env, "SYSTEMD_LOG_LEVEL=warning")
	}
	return plan, nil
}

// printkTime is the file journald reads to decide whether the apps'
// lines it forwards to the console start with the kernel's uptime.
const printkTime = "/sys/module/printk/parameters/time"

// samePrefixes makes the apps' lines on rkt's stdout one form whatever the
// network and host: the pod's journald puts the kernel's uptime in front,
// "[ 1234.5678] app[pid]: line" as rkt printed them, only when it reads Y
// in the printk setting, which the host may have off (and a pod with the
// host's network saw the host's). A "Y" over it keeps rkt's form.
func samePrefixes(rootfs string) ([]bind, error) {
	if _, err := os.Stat(printkTime); err != nil {
		return nil, nil
	}
	f := filepath.Join(rootfs, "rkt", "printk-time")
	if err := os.WriteFile(f, []byte("Y\n"), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", f, err)
	}
	return []bind{{source: f, target: printkTime, readOnly: true}}, nil
}

func (b bind) arg() string {
	flag := "--bind="
	if b.readOnly {
		flag = "--bind-ro="
	}
	s := flag + escapeBind(b.source) + ":" + escapeBind(b.target)
	if b.nonRecurse {
		s += ":norbind"
	}
	return s
}

// escapeBind escapes the colons nspawn's --bind splits on, and the
// backslashes it unescapes (cgroup scope names hold \x2d).
func escapeBind(p string) string {
	return strings.ReplaceAll(strings.ReplaceAll(p, `\`, `\\`), ":", `\:`)
}

// ErrNetwork is wrapped for --net and --port values the pod cannot have.
var ErrNetwork = errors.New("network not available")

func parseUUID(s string) ([16]byte, error) {
	var id [16]byte
	h := strings.ReplaceAll(s, "-", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("pod UUID %q: %w", s, stage1.ErrUsage)
	}
	copy(id[:], b)
	return id, nil
}

func writeMachine(rootfs, hostname, machineID string, interactive bool) error {
	files := map[string]string{
		"etc/hostname":             hostname + "\n",
		"etc/machine-id":           machineID + "\n",
		JournalRunDir + "/flushed": "",
	}
	if interactive {
		files[InteractiveFlag] = ""
	}
	for rel, content := range files {
		p := filepath.Join(rootfs, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", rel, err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", rel, err)
		}
	}
	for _, d := range []string{"var/log/journal", stage1.StatusDir, stage1.EnvDir} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	return nil
}

func writeEnvFile(path string, env []string) error {
	var b strings.Builder
	for _, kv := range env {
		b.WriteString(strings.ReplaceAll(kv, "\n", `\n`))
		b.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing environment file %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing environment file %s: %w", path, err)
	}
	return nil
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// Place moves the calling process into the pod's cgroups, records them in
// podDir, decides machined registration (by trying it: the pod is never
// refused because machined is absent), and writes ppid: after the exec,
// this process is nspawn, the parent of the pod's only process.
//
// On a systemd host with pure cgroup v2 nothing is moved: nspawn and
// machined place the pod as systemd expects (see placement), and nspawn
// registers it.
func (p *Plan) Place(ctx context.Context, podDir, uuid string) error {
	front := []string{"--register=yes"}
	if p.host.place == placeOwn {
		pl, err := cgroups.Join(cgroups.ScopeName(MachineName(uuid)))
		if err != nil {
			return err
		}
		if err := writePlacement(podDir, pl.Dirs, pl.Subcgroup); err != nil {
			return err
		}
		if u, ok := cgroups.Unified(p.host.hs); ok && p.host.v2 {
			if err := p.host.checkV2(p.allLimits(), filepath.Join(u.Mount, pl.Subcgroup)); err != nil {
				return err
			}
		}
		id, err := parseUUID(uuid)
		if err != nil {
			return err
		}
		p.Register = machined.Probe(ctx, MachineName(uuid), id, os.Getpid(), pod.Stage1RootfsPath(podDir)) == nil
		if !p.Register {
			front[0] = "--register=no"
		}
	} else {
		if err := p.placeSystemd(podDir, uuid); err != nil {
			return err
		}
		p.Register = true
	}
	if p.host.place != placeScope {
		front = append(front, "--keep-unit")
	}
	if err := p.placeApps(p.rootfs); err != nil {
		return err
	}
	p.Args = append(p.Args[:1], append(front, p.Args[1:]...)...)
	if err := os.WriteFile(filepath.Join(podDir, pod.PPIDFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("writing ppid: %w", err)
	}
	return nil
}

// Exec replaces the process with nspawn in a mount namespace of its own,
// where a tmpfs on /run/systemd/nspawn keeps nspawn's propagation
// directories off the host's disk-backed /run (and its warning off rkt's
// stderr). It returns only on failure.
func (p *Plan) Exec() error {
	// The namespace belongs to this thread; exec keeps the calling
	// thread's, so the goroutine must stay on it.
	runtime.LockOSThread()
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		return fmt.Errorf("creating nspawn's mount namespace: %w", err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_SLAVE, ""); err != nil {
		return &MountError{Target: "/", Flags: syscall.MS_REC | syscall.MS_SLAVE, Err: err}
	}
	if p.netns != "" {
		if err := joinNetns(p.netns); err != nil {
			return err
		}
	}
	const propagate = "/run/systemd/nspawn"
	if err := os.MkdirAll(propagate, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", propagate, err)
	}
	if err := syscall.Mount("tmpfs", propagate, "tmpfs", 0, "mode=0755"); err != nil {
		return &MountError{Source: "tmpfs", Target: propagate, FSType: "tmpfs", Err: err}
	}
	err := syscall.Exec(p.Path, p.Args, p.Env)
	return fmt.Errorf("executing %s: %w", p.Path, err)
}

// MountError is a failed mount(2).
type MountError struct {
	Source, Target, FSType string
	Flags                  uintptr
	Err                    error
}

func (e *MountError) Error() string {
	return fmt.Sprintf("mount %q on %q (type %q, flags %#x): %v", e.Source, e.Target, e.FSType, e.Flags, e.Err)
}

func (e *MountError) Unwrap() error { return e.Err }

// uidShift is the first host uid of --private-users's SHIFT:COUNT, or -1
// when the pod has no user namespace.
func uidShift(privateUsers string) (int, error) {
	if privateUsers == "" {
		return -1, nil
	}
	first, _, _ := strings.Cut(privateUsers, ":")
	n, err := strconv.ParseUint(first, 10, 31)
	if err != nil {
		return -1, fmt.Errorf("--private-users=%s: want SHIFT:COUNT: %w", privateUsers, stage1.ErrUsage)
	}
	return int(n), nil
}

// maxUserNamespaces is the host's limit on user namespaces; 0 turns them
// off (some hardened hosts), and nspawn would fail with a bare EPERM/ENOSPC.
var maxUserNamespaces = "/proc/sys/user/max_user_namespaces"

func checkUserNamespaces() error {
	b, err := os.ReadFile(maxUserNamespaces)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("--private-users: this kernel has no user namespaces")
		}
		return fmt.Errorf("--private-users: %w", err)
	}
	if strings.TrimSpace(string(b)) == "0" {
		return fmt.Errorf("--private-users: user namespaces are turned off on this host (%s is 0)", maxUserNamespaces)
	}
	return nil
}

// joinNetns moves the calling thread into the network namespace bound at
// path.
func joinNetns(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening the pod's network namespace: %w", err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("joining the pod's network namespace %s: %w", path, err)
	}
	return nil
}
