// Package launch hands prepared pods to their stage1: it mounts the pod's
// rootfs, execs the run entrypoint with the pod's lock (or runs fly's in
// process: ExecRun), and calls the enter, stop and gc entrypoints
// (common/stage1/CONTRACT.md).
package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/mountinfo"
	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage1-fly/fly"
)

// ErrNoEntrypoint is wrapped when the pod's stage1 lacks an entrypoint.
var ErrNoEntrypoint = errors.New("entrypoint not provided by the pod's stage1")

// ErrInterfaceVersion is wrapped when the pod's stage1 declares an
// interface version newer than stage0 speaks.
var ErrInterfaceVersion = errors.New("stage1 interface version not supported")

// Entrypoint returns the absolute path of the stage1 entrypoint named by
// annotation ann for the pod in podDir, and the stage1's interface version.
func Entrypoint(podDir, ann string) (string, int, error) {
	im, version, err := stage1Manifest(podDir)
	if err != nil {
		return "", version, err
	}
	ep, err := entrypoint(podDir, im, ann)
	return ep, version, err
}

// entrypoint is the path of im's entrypoint ann in the pod's stage1 rootfs.
func entrypoint(podDir string, im *schema.ImageManifest, ann string) (string, error) {
	ep, ok := im.Annotations.Get(ann)
	if !ok {
		return "", fmt.Errorf("stage1 %s: %s: %w", im.Name, ann, ErrNoEntrypoint)
	}
	return filepath.Join(pod.Stage1RootfsPath(podDir), filepath.Clean("/"+ep)), nil
}

// stage1Manifest reads the pod's stage1 image manifest and checks its
// interface version.
func stage1Manifest(podDir string) (*schema.ImageManifest, int, error) {
	b, err := os.ReadFile(pod.Stage1ManifestPath(podDir))
	if err != nil {
		return nil, 0, fmt.Errorf("reading stage1 manifest: %w", err)
	}
	var im schema.ImageManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, 0, fmt.Errorf("stage1 manifest %s: %w", pod.Stage1ManifestPath(podDir), err)
	}
	version := 1
	if v, ok := im.Annotations.Get(stage1.AnnInterfaceVersion); ok {
		version, err = strconv.Atoi(v)
		if err != nil || version < stage1.MinInterfaceVersion {
			return nil, 0, fmt.Errorf("stage1 %s: bad interface version %q", im.Name, v)
		}
		if version > stage1.InterfaceVersion {
			return nil, 0, fmt.Errorf("stage1 %s: interface version %d: %w (this rkt speaks %d to %d)",
				im.Name, version, ErrInterfaceVersion, stage1.MinInterfaceVersion, stage1.InterfaceVersion)
		}
	}
	return &im, version, nil
}

// TreeRootfs maps a tree store ID to its rootfs directory.
type TreeRootfs func(treeID string) string

// MountRootfs mounts the overlays of a pod prepared with overlay: the
// stage1 rootfs, then each app's rootfs inside it. A pod prepared without
// overlay has its copies in place already and nothing is mounted.
func MountRootfs(podDir string, trees TreeRootfs, apps []string) error {
	if _, err := os.Stat(filepath.Join(podDir, pod.OverlayMarker)); err != nil {
		return nil
	}
	s1tree, err := readID(filepath.Join(podDir, pod.Stage1TreeFile))
	if err != nil {
		return err
	}
	if err := mountOverlay(podDir, trees(s1tree), s1tree, "", pod.Stage1RootfsPath(podDir)); err != nil {
		return fmt.Errorf("mounting stage1 rootfs: %w", err)
	}
	for _, app := range apps {
		tree, err := readID(pod.AppTreeStoreIDPath(podDir, app))
		if err != nil {
			return err
		}
		if err := mountOverlay(podDir, trees(tree), tree, app, pod.AppRootfsPath(podDir, app)); err != nil {
			return fmt.Errorf("mounting rootfs of app %s: %w", app, err)
		}
	}
	return nil
}

func mountOverlay(podDir, lower, treeID, app, target string) error {
	upper := pod.OverlayUpperPath(podDir, treeID, app)
	work := pod.OverlayWorkPath(podDir, treeID, app)
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Lower dirs are shared by every pod of the image: the tree store's
	// rootfs is never written, all changes land in the pod's upper dir.
	data := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := mountinfo.Mount("overlay", target, "overlay", 0, data); err != nil {
		return err
	}
	// Private: under a shared parent (a systemd host's /) the mount would
	// be shared, and what is mounted or unmounted below it (the apps'
	// rootfs, a stage1's binds) would propagate to its peers. Its own
	// unmount still reaches its copies, through its parent.
	return mountinfo.Mount("", target, "", unix.MS_PRIVATE, "")
}

func readID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading tree store ID: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" || strings.ContainsAny(id, "/\x00") {
		return "", fmt.Errorf("tree store ID in %s is invalid", path)
	}
	return id, nil
}

// Run says how ExecRun starts a pod.
type Run struct {
	Apps    []string       // the pod's apps
	Args    stage1.RunArgs // the run entrypoint's arguments
	Debug   bool
	Command string // "rkt run", named by the stage1 when the pod fails before its apps start
	// Stderr and Debugf are rkt's: an in-process run entrypoint writes
	// its diagnostics to Stderr.
	Stderr io.Writer
	Debugf func(format string, args ...any)
}

// Stage1ExitError is the failure of a run entrypoint that ran in rkt's
// process: it has printed what there was to say (its one failure line)
// and rkt exits with Code, as the exec'd entrypoint would have.
type Stage1ExitError struct{ Code int }

func (e *Stage1ExitError) Error() string {
	return fmt.Sprintf("stage1 run entrypoint failed (exit status %d)", e.Code)
}

// ExecRun replaces the current process with the pod's run entrypoint. The
// pod must be running (in run/, locked by us). It returns only on failure.
//
// When the pod's stage1 is the fly image built from the same sources as
// this rkt (its stage1.AnnBuild equals stage1.BuildID), the entrypoint's
// code is the fly package linked into rkt: it runs here, with the same
// arguments and handover environment, instead of being exec'd. That spares
// a program start (~2 ms, a sixth of a fly pod's start on the benchmark
// machine) and behaves the same; any other stage1 (rkt 1.30's, another build) is
// exec'd.
func ExecRun(p *pod.Pod, r Run) error {
	dir := p.Path()
	im, version, err := stage1Manifest(dir)
	if err != nil {
		return err
	}
	ep, err := entrypoint(dir, im, stage1.AnnRun)
	if err != nil {
		return err
	}
	if err := os.Chdir(dir); err != nil {
		return fmt.Errorf("entering pod directory: %w", err)
	}
	fd := p.LockFD()
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("handing the pod lock to stage1: %w", err)
	}
	handover := []string{stage1.EnvLockFD + "=" + strconv.Itoa(fd), stage1.EnvCommand + "=" + r.Command}
	if r.Debug {
		handover = append(handover, stage1.EnvDebug+"=1")
	}
	if err := writeStage1Inputs(dir, r.Apps); err != nil {
		return err
	}
	if f, err := os.Create(filepath.Join(dir, pod.StartedFile)); err == nil {
		f.Close()
	}
	args := r.Args.Args(version)
	if flyInProcess(im) {
		if r.Debugf != nil {
			r.Debugf("running the fly run entrypoint in this process (stage1 build %s)", stage1.BuildID)
		}
		return &Stage1ExitError{Code: fly.Main("run", args, overlayEnv(handover), r.Stderr)}
	}
	if r.Debugf != nil {
		r.Debugf("executing stage1 %s", ep)
	}
	argv := append([]string{ep}, args...)
	if err := syscall.Exec(ep, argv, append(os.Environ(), handover...)); err != nil {
		return fmt.Errorf("executing stage1 run entrypoint %s: %w", ep, err)
	}
	return nil
}

// flyInProcess tells whether im is the fly stage1 built from this rkt's
// sources, whose run entrypoint ExecRun runs in process.
func flyInProcess(im *schema.ImageManifest) bool {
	if stage1.BuildID == "" || im.Name.String() != stage1.NameFly {
		return false
	}
	b, ok := im.Annotations.Get(stage1.AnnBuild)
	return ok && b == stage1.BuildID
}

// overlayEnv is os.Getenv with the KEY=VALUE pairs of vars over it: the
// environment the exec'd entrypoint would have.
func overlayEnv(vars []string) fly.Env {
	m := make(map[string]string, len(vars))
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(key string) string {
		if v, ok := m[key]; ok {
			return v
		}
		return os.Getenv(key)
	}
}

// writeStage1Inputs writes, in the (mounted) stage1 rootfs, what rkt
// 1.30's stage0 wrote there and its stage1 images read: each app's image
// manifest at opt/stage2/<app>/manifest (rkt's fly and coreos stage1s load
// the pod from those), and the rkt/status and rkt/env directories, touched
// so that they are in the overlay's upper directory, where status is read
// after the pod's mounts are gone.
func writeStage1Inputs(podDir string, apps []string) error {
	for _, app := range apps {
		b, err := os.ReadFile(pod.AppImageManifestPath(podDir, app))
		if err != nil {
			return fmt.Errorf("reading image manifest of app %s: %w", app, err)
		}
		dst := filepath.Join(pod.AppPath(podDir, app), "manifest")
		if old, err := os.ReadFile(dst); err == nil && string(old) == string(b) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("writing image manifest of app %s: %w", app, err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return fmt.Errorf("writing image manifest of app %s: %w", app, err)
		}
	}
	now := time.Now()
	for _, d := range []string{pod.StatusDir(podDir), filepath.Dir(pod.AppEnvPath(podDir, "x"))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
		if err := os.Chtimes(d, now, now); err != nil {
			return fmt.Errorf("touching %s: %w", d, err)
		}
	}
	return nil
}

// Stdio is where an entrypoint's standard streams go: rkt's, as the CLI
// has them. *os.File ones (a terminal, say) are handed to the entrypoint
// as they are.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// CallStop runs the stop entrypoint; its output goes to out.
func CallStop(podDir, uuid string, force bool, out io.Writer) error {
	ep, _, err := Entrypoint(podDir, stage1.AnnStop)
	if err != nil {
		return err
	}
	return runEntry(podDir, ep, stage1.StopArgs{Force: force, UUID: uuid}.Args(), out)
}

// CallGC runs the gc entrypoint, its output going to out; a stage1 without
// one holds nothing outside the pod directory.
func CallGC(podDir, uuid, localConfig string, debug bool, out io.Writer) error {
	ep, version, err := Entrypoint(podDir, stage1.AnnGC)
	if errors.Is(err, ErrNoEntrypoint) {
		return nil
	}
	if err != nil {
		return err
	}
	return runEntry(podDir, ep, stage1.GCArgs{Debug: debug, LocalConfig: localConfig, UUID: uuid}.Args(version), out)
}

// Enter runs cmd in app's environment through the enter entrypoint, on
// stdio, and returns its exit status.
func Enter(podDir string, pid int, app string, cmd []string, stdio Stdio) (int, error) {
	ep, _, err := Entrypoint(podDir, stage1.AnnEnter)
	if err != nil {
		return 0, err
	}
	c := exec.Command(ep, stage1.EnterArgs{PID: pid, AppName: app, Cmd: cmd}.Args()...)
	c.Dir = podDir
	c.Stdin, c.Stdout, c.Stderr = stdio.In, stdio.Out, stdio.Err
	err = c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("running enter entrypoint %s: %w", ep, err)
	}
	return 0, nil
}

// runEntry runs a stage1 entrypoint whose output is not the pod's: both
// its streams go to out (rkt's stderr).
func runEntry(podDir, ep string, args []string, out io.Writer) error {
	c := exec.Command(ep, args...)
	c.Dir = podDir
	c.Stdout, c.Stderr = out, out
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(ep), strings.Join(args, " "), err)
	}
	return nil
}

// EnsureMounted mounts a pod's overlays when they are not mounted (after a
// reboot, say), for commands that read an exited pod's rootfs. The returned
// function undoes what it mounted.
func EnsureMounted(podDir string, trees TreeRootfs, apps []string) (func(), error) {
	if _, err := os.Stat(filepath.Join(podDir, pod.OverlayMarker)); err != nil {
		return func() {}, nil
	}
	if isMountPoint(pod.Stage1RootfsPath(podDir)) {
		return func() {}, nil
	}
	if err := MountRootfs(podDir, trees, apps); err != nil {
		mountinfo.UnmountUnder(pod.Stage1RootfsPath(podDir))
		return nil, err
	}
	return func() { mountinfo.UnmountUnder(pod.Stage1RootfsPath(podDir)) }, nil
}

// isMountPoint tells whether path is the root of a mount: its device
// differs from its parent's.
func isMountPoint(path string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
