package boot

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage1/machined"
	"github.com/rktng/rkt/stage1/units"
	"github.com/rktng/rkt/stage2"
	"github.com/rktng/rkt/stage2/isolators"
)

// podPlan is the pod as planPod laid it out in the stage1 rootfs, with
// nothing of nspawn in it: the machine (hostname, machine-id), the network,
// one stage2 config and one unit set per app, and what is left for the
// program that boots the rootfs to do (the binds, readiness, the limits to
// place).
type podPlan struct {
	podDir, rootfs, hostname string
	net                      podNetwork
	binds                    []bind // the apps' volumes and name files
	notify                   bool   // an app reports readiness
	apps                     []appLimits
	podLimits                isolators.Limits
	host                     hostLayout
	warn                     io.Writer
}

// planPod reads the pod manifest of podDir and writes the pod's machine,
// network and apps into its stage1 rootfs. Warnings go to warn.
func planPod(args stage1.RunArgs, podDir string, warn io.Writer) (*podPlan, error) {
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
	pp := &podPlan{podDir: podDir, rootfs: pod.Stage1RootfsPath(podDir), hostname: args.Hostname, warn: warn}
	if pp.hostname == "" {
		pp.hostname = machined.MachineName(args.UUID)
	}
	if err := writeMachine(pp.rootfs, pp.hostname, hex.EncodeToString(id[:]), args.Interactive); err != nil {
		return nil, err
	}
	if pp.net, err = setupNetwork(args, podDir, pm, apps); err != nil {
		return nil, err
	}
	cniResolv, err := resolvFromCNI(pp.rootfs, args.DNSConfMode, pp.net)
	if err != nil {
		return nil, err
	}
	dnsMode := args.DNSConfMode
	if cniResolv {
		dnsMode.Resolv = "stage0"
	}
	if err := hostsWithPodIP(pp.rootfs, dnsMode, pp.hostname, pp.net.podIP()); err != nil {
		return nil, err
	}
	if pp.host, err = detectHost(context.Background()); err != nil {
		return nil, err
	}
	if err := pp.writeApps(args, pm, apps, dnsMode); err != nil {
		return nil, err
	}
	return pp, nil
}

// writeApps writes each app's stage2 config, environment file and units,
// and the pod's units, and collects the apps' binds and limits.
func (pp *podPlan) writeApps(args stage1.RunArgs, pm *schema.PodManifest, apps []*app, dnsMode stage1.DNSConfMode) error {
	volumes := map[string]types.Volume{}
	for _, v := range pm.Volumes {
		volumes[v.Name.String()] = v
	}
	extraEnv := map[string]string{}
	if u := metadataURL(args, pp.net); u != "" {
		extraEnv["AC_METADATA_URL"] = u
	}
	keys := v1Keys(pp.host.hs)
	pu := units.Pod{Interactive: args.Interactive}
	for _, a := range apps {
		if err := a.resolveMounts(pp.podDir, volumes); err != nil {
			return err
		}
		pp.binds = append(pp.binds, a.mounts...)
		nb, err := nameFiles(pp.podDir, a, dnsMode, pp.hostname, pp.net.podIP())
		if err != nil {
			return err
		}
		pp.binds = append(pp.binds, nb...)
		cfg, err := a.stage2Config(pp.podDir, extraEnv)
		if err != nil {
			return err
		}
		l, err := a.confine(args, cfg, keys, pp.warn)
		if err != nil {
			return err
		}
		pp.apps = append(pp.apps, appLimits{name: a.name, limits: l})
		if err := cfg.Save(filepath.Join(pp.rootfs, stage2.ConfigPath(a.name))); err != nil {
			return err
		}
		if err := writeEnvFile(pod.AppEnvPath(pp.podDir, a.name), cfg.Environment); err != nil {
			return err
		}
		pp.notify = pp.notify || cfg.Notify
		u := units.App{
			Name:      a.name,
			ImageName: a.image.Name.String(),
			Notify:    cfg.Notify,
			PostStop:  len(cfg.PostStop) > 0,
		}
		if pp.host.v2 {
			u.Resources = v2Resources(l)
		}
		pu.Apps = append(pu.Apps, u)
	}
	pp.podLimits = podLimits(pm, pp.warn)
	if err := pp.host.checkV2(union(append(appsLimits(pp.apps), pp.podLimits)...), ""); err != nil {
		return err
	}
	if pp.host.v2 {
		pu.Resources = v2Resources(pp.podLimits)
	}
	return units.Write(filepath.Join(pp.rootfs, "etc/systemd/system"), pu)
}

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
