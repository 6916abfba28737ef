// Package units writes the systemd units of one pod: a default.target that
// wants every app, and per app a service that runs the stage2 helper (which
// prepares the app's rootfs, runs its pre-start handlers and execs it), then
// the reaper and the post-stop handlers after it. The static units of the
// stage1 image (journald, the shutdown chain) are the files beside this
// one; the stage1 packer (aci/acibuild/mkstage1) copies them into the
// image.
package units

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Stage2Bin is the helper that runs inside the pod for each app.
const Stage2Bin = "/usr/lib/rkt/stage2"

// App is what the units of one app depend on.
type App struct {
	Name      string
	ImageName string
	// Notify makes the service Type=notify: the pod is "ready" (and rkt's
	// own NOTIFY_SOCKET hears READY=1) only when the app says so.
	Notify bool
	// PostStop adds the app's post-stop handlers after the reaper.
	PostStop bool
	// Resources are the app's limits, enforced by the pod's systemd on
	// the app's cgroup (pure cgroup v2 only: there the pod's systemd owns
	// its delegated subtree; on a v1 host the stage1 sets them from the
	// host instead, and these stay zero).
	Resources Resources
}

// Resources are cgroup v2 limits as systemd directives; zero is no limit.
type Resources struct {
	MemoryBytes int64
	// CPUMilli is the quota in thousandths of a CPU.
	CPUMilli int64
	// CPUWeight is cgroup v2's cpu.weight (1..10000).
	CPUWeight int64
}

// directives renders r as [Service] or [Slice] lines. CPUQuota= takes a
// percentage with two decimals: 200m is 20.00%, 1 CPU 100.00%.
func (r Resources) directives() string {
	var b strings.Builder
	if r.MemoryBytes > 0 {
		fmt.Fprintf(&b, "MemoryMax=%d\n", r.MemoryBytes)
	}
	if r.CPUMilli > 0 {
		fmt.Fprintf(&b, "CPUQuota=%d.%02d%%\n", r.CPUMilli/10, r.CPUMilli%10*10)
	}
	if r.CPUWeight > 0 {
		fmt.Fprintf(&b, "CPUWeight=%d\n", r.CPUWeight)
	}
	return b.String()
}

// PodLimitsDropIn is the drop-in that limits every app of the pod
// together: all of them run in the pod's system.slice.
const PodLimitsDropIn = "system.slice.d/50-rkt-pod-limits.conf"

// Pod is the set of apps and how the pod talks to rkt's terminal.
type Pod struct {
	Apps []App
	// Interactive connects the (single) app to the console for input.
	Interactive bool
	// Resources limit the pod's apps together (pure cgroup v2).
	Resources Resources
}

// StopRequest (in the pod) is the file whose creation asks the pod to end
// in order: the stop entrypoint writes it (through the stage1 rootfs) and
// StopPath acts on it.
const StopRequest = "/rkt/stop-request"

// RequestStop asks the pod whose stage1 rootfs is rootfs to end in order.
// Creating the file is the whole request: it cannot be lost, and asking
// twice is asking once.
func RequestStop(rootfs string) error {
	p := filepath.Join(rootfs, StopRequest)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("requesting the pod's stop: %w", err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return fmt.Errorf("requesting the pod's stop: %w", err)
	}
	return nil
}

// StopPath is the path unit that turns StopRequest into the pod's halt.
const StopPath = "rkt-stop.path"

// ServiceName is the unit of app: the app's name, as in rkt, so that
// `journalctl -u APP` works.
func ServiceName(app string) string { return app + ".service" }

// Render returns the unit files of the pod, by file name.
//
// Apps wait for journald's sockets, not for journald itself: their output
// queues in the socket while journald starts, and the pod's boot does not
// pay for journald's start-up before the first app runs.
func Render(p Pod) map[string]string {
	out := make(map[string]string, len(p.Apps)+1)
	var names []string
	for _, a := range p.Apps {
		names = append(names, ServiceName(a.Name))
		out[ServiceName(a.Name)] = service(a, p.Interactive)
	}
	sort.Strings(names)
	apps := strings.Join(names, " ")
	out["default.target"] = fmt.Sprintf(`# Booting the pod is starting its apps; it has "finished booting" (and
# nspawn reports READY=1 under --notify-ready) when every app has started.
[Unit]
Description=rkt pod
DefaultDependencies=no
Wants=systemd-journald.service %[1]s %[2]s
After=%[1]s
AllowIsolate=yes
`, apps, StopPath)
	// A stop is a file, not a signal: a signal to the pod's PID 1 is lost
	// while systemd has not installed its handlers (the kernel drops it
	// for a namespace's init), and nspawn takes a second SIGTERM as an
	// order to kill. The file waits for the pod: the path unit starts
	// watching once every app has started, so that a stop during the boot
	// still stops apps that run (SIGTERM, post-stop handlers, status).
	out[StopPath] = fmt.Sprintf(`[Unit]
Description=Stop request
DefaultDependencies=no
After=%[1]s

[Path]
PathExists=%[2]s
Unit=halt.target
`, apps, StopRequest)
	if d := p.Resources.directives(); d != "" {
		out[PodLimitsDropIn] = "# The pod's own limits (pod isolators), on the slice of its apps.\n[Slice]\n" + d
	}
	return out
}

func service(a App, interactive bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[Unit]
Description=Application=%s Image=%s
DefaultDependencies=no
After=systemd-journald.socket systemd-journald-dev-log.socket
Conflicts=shutdown.target
Before=shutdown.target

[Service]
`, a.Name, escapeValue(a.ImageName))
	if a.Notify {
		b.WriteString("Type=notify\nNotifyAccess=all\n")
	} else {
		b.WriteString("Type=simple\n")
	}
	// The reaper records the status as soon as the main process is gone;
	// it runs before the post-stop handlers so that `rkt status` does not
	// wait for them, and it is what ends the pod.
	// The app's /proc, /sys, /dev and the rest that stage2 mounts are in
	// a mount namespace of the app's own, a slave of the pod's, which
	// stage2 makes itself (stage2.PrivateMounts): the pod's systemd would
	// otherwise re-read its mount table and make a mount unit for each
	// of them, on the way to the app's start and again at the pod's stop.
	// Not PrivateMounts= here: systemd's namespace set-up cost ~9 ms of
	// CPU before each of the unit's commands, the reaper's too, which
	// mounts nothing. rkt enter joins the app's namespace (stage1/enter).
	fmt.Fprintf(&b, `Restart=no
KillMode=mixed
ExecStart=%[1]s run %[2]s
ExecStopPost=%[1]s reaper %[2]s
`, Stage2Bin, a.Name)
	if a.PostStop {
		fmt.Fprintf(&b, "ExecStopPost=-%s post-stop %s\n", Stage2Bin, a.Name)
	}
	if d := a.Resources.directives(); d != "" {
		// OOMPolicy=stop (systemd's default) ends the app when the kernel
		// OOM-kills any of its processes, as a v1 memory limit does for
		// the main one: the reaper then reports 137.
		b.WriteString(d + "OOMPolicy=stop\n")
	}
	fmt.Fprintf(&b, "SyslogIdentifier=%s\n", a.Name)
	if interactive {
		// No TTYReset=: systemd's reset after the app's exit ends with
		// tcflush(TCIOFLUSH), which on a pty drops what the app wrote and
		// nspawn's forwarder had not read yet: under load, an
		// interactive app's last output never reached rkt's terminal.
		// nspawn gives the pod a fresh pty, so nothing needs a reset.
		b.WriteString("StandardInput=tty-force\nStandardOutput=tty\nStandardError=tty\nTTYPath=/dev/console\n")
	} else {
		b.WriteString("StandardOutput=journal+console\nStandardError=journal+console\n")
	}
	return b.String()
}

// escapeValue keeps a free-form value on one line and away from systemd's
// specifier expansion.
func escapeValue(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	s = strings.ReplaceAll(s, "\\", "\\\\")
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

// Write writes the pod's units into dir (the stage1's etc/systemd/system).
func Write(dir string, p Pod) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing units in %s: %w", dir, err)
	}
	for name, content := range Render(p) {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			return fmt.Errorf("writing unit %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing unit %s: %w", name, err)
		}
	}
	return nil
}
