// Package boot is the run entrypoint of the stage1-host: it turns the pod
// manifest into the pod's machine (hostname, machine-id, one stage2 config
// and one unit set per app), puts itself in the pod's own cgroups, and execs
// systemd-nspawn to boot the pod's systemd.
//
// Prepare does everything that can fail with a clear message and returns
// the Plan; Exec carries it out and returns only on failure. Prepare is two
// steps: planPod (pod.go) lays the pod out in the stage1 rootfs with
// nothing of nspawn in it (the machine, the network, one stage2 config and
// unit set per app), so that another way of booting that rootfs could
// reuse it; nspawnPlan turns that layout into nspawn's command line. The
// pod's network (stage1/podnet) is set up before nspawn, which joins it.
package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/mountinfo"
	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage1/cgroups"
	"github.com/rktng/rkt/stage1/machined"
	"github.com/rktng/rkt/stage2/isolators"
)

// Files of the stage1-host in its rootfs.
const (
	// InteractiveFlag (in the rootfs) tells stage2 that the console is
	// the user's terminal.
	InteractiveFlag = "rkt/interactive"
	// JournalRunDir (in the rootfs) is bound over the pod's
	// /run/systemd/journal, holding journald's sockets and the "flushed"
	// flag that makes journald write to /var/log/journal from its first
	// message: no flush service in the pod's boot path.
	JournalRunDir = "rkt/journal-run"
)

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

// Prepare writes the pod's machine into the stage1 rootfs of podDir
// (planPod) and returns the exec of systemd-nspawn that boots it
// (nspawnPlan). Warnings (an isolator this stage1 does not enforce, an
// nspawn older than the image's systemd) go to warn.
func Prepare(args stage1.RunArgs, podDir string, warn io.Writer) (*Plan, error) {
	pp, err := planPod(args, podDir, warn)
	if err != nil {
		return nil, err
	}
	return nspawnPlan(args, pp)
}

// nspawnPlan is the nspawn command line and environment that boot the pod
// that pp laid out: everything of this stage1 that is nspawn's.
func nspawnPlan(args stage1.RunArgs, pp *podPlan) (*Plan, error) {
	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		return nil, fmt.Errorf("systemd-nspawn not found (install systemd-container): %w", err)
	}
	if err := checkNspawn(nspawn, pp.podDir, args.PrivateUsers != "", pp.warn); err != nil {
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
	plan := &Plan{Path: nspawn, apps: pp.apps, podLimits: pp.podLimits, rootfs: pp.rootfs, host: pp.host, uidShift: shift}
	plan.Args = []string{
		"systemd-nspawn",
		"--boot",
		"--quiet",
		"--link-journal=try-guest",
		"--machine=" + machined.MachineName(args.UUID),
		"--hostname=" + pp.hostname,
		"--directory=" + pp.rootfs,
		"--bind=" + escapeBind(filepath.Join(pp.rootfs, JournalRunDir)) + ":/run/systemd/journal",
	}
	if args.Interactive && isTerminal(0) {
		plan.Args = append(plan.Args, "--console=interactive")
	} else {
		plan.Args = append(plan.Args, "--console=read-only")
	}
	if pp.notify {
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
		if pp.net.res != nil {
			plan.netns = pp.net.res.NetNS
		}
	}
	if plan.netns == "" {
		plan.Args = append(plan.Args, pp.net.nspawn...)
	}
	binds := pp.binds
	if !slices.Contains(pp.net.nspawn, "--private-network") {
		b, err := samePrefixes(pp.rootfs)
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
	plan.Env, err = nspawnEnv(args)
	if err != nil {
		return nil, err
	}
	return plan, nil
}

// nspawnEnv is nspawn's environment: rkt's, and the settings nspawn takes
// only from there.
func nspawnEnv(args stage1.RunArgs) ([]string, error) {
	// The pod's cgroup layout is nspawn's choice, the host's own (pure
	// cgroup2 on a unified host, hybrid on a hybrid one). Forcing cgroup2
	// inside on a hybrid host (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1, as
	// this stage1 did) makes nspawn split the pod's scope into
	// payload/supervisor, one more migration of a process between
	// cgroups on the way to the app (each waits for an RCU grace period,
	// ~10 ms): 17 ms a start here. What the pod's systemd says about the
	// v1 controllers it finds read-only there stays off rkt's stdout
	// (units/system.conf: LogTarget=null).
	env := os.Environ()
	switch args.IPC {
	case "", "auto", "private":
	case "parent":
		// As rkt's stage1: nspawn stays in the host's IPC namespace.
		env = append(env, "SYSTEMD_NSPAWN_SHARE_NS_IPC=true")
	default:
		return nil, fmt.Errorf("--ipc=%s: want auto, private or parent", args.IPC)
	}
	if !args.Debug {
		// nspawn's notices ("Trying to halt container...") are not the
		// apps' output; its warnings and errors still show.
		env = append(env, "SYSTEMD_LOG_LEVEL=warning")
	}
	return env, nil
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
		pl, err := cgroups.Join(cgroups.ScopeName(machined.MachineName(uuid)))
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
		p.Register = machined.Probe(ctx, machined.MachineName(uuid), id, os.Getpid(), pod.Stage1RootfsPath(podDir)) == nil
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
	if err := mountinfo.Mount("", "/", "", syscall.MS_REC|syscall.MS_SLAVE, ""); err != nil {
		return err
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
	if err := mountinfo.Mount("tmpfs", propagate, "tmpfs", 0, "mode=0755"); err != nil {
		return err
	}
	err := syscall.Exec(p.Path, p.Args, p.Env)
	return fmt.Errorf("executing %s: %w", p.Path, err)
}

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
