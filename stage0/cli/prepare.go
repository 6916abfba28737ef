package cli

import (
	"fmt"
	"math/rand/v2"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage0/prepare"
)

func newPrepareCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "prepare [--volume=name,kind=host,...] IMAGE [-- image-args...[---]]...",
		Short:              "Prepare a pod to be run later with run-prepared",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPrepare(g, args)
		},
	}
}

func runPrepare(g *globals, args []string) error {
	pf, apps, err := parseRunLine(g, "prepare", false, args)
	if err != nil || pf == nil {
		return err
	}
	p, st, err := preparePod(g, pf, apps)
	if err != nil {
		return err
	}
	p.Close()
	_ = st
	_, err = fmt.Fprintln(g.stdout, p.UUID.String())
	return err
}

// preparePod does the common first half of run and prepare: images in the
// store, the pod manifest, the pod directory. The pod is returned prepared.
func preparePod(g *globals, pf *podFlags, apps []parsedApp) (*pod.Pod, *store.Store, error) {
	if pf.PodManifest != "" && len(apps) > 0 {
		return nil, nil, usageErrorf("--pod-manifest cannot be used with images")
	}
	if pf.PodManifest == "" && len(apps) == 0 {
		return nil, nil, usageErrorf("no image given")
	}
	if pf.Interactive && len(apps) > 1 {
		return nil, nil, usageErrorf("--interactive needs exactly one app, got %d", len(apps))
	}
	st, err := g.openStore()
	if err != nil {
		return nil, nil, err
	}
	g.debugf("store opened")
	opts, err := pf.prepareOptions(g)
	if err != nil {
		return nil, nil, err
	}
	res, err := g.resolver(st, pf.PullPolicy)
	if err != nil {
		return nil, nil, err
	}
	var used []string
	for _, a := range apps {
		key, err := res.Resolve(a.image, a.flags.Signature)
		if err != nil {
			return nil, nil, err
		}
		pa, err := a.toPrepareApp(key)
		if err != nil {
			return nil, nil, err
		}
		opts.Apps = append(opts.Apps, pa)
		used = append(used, key)
		g.debugf("image %s resolved to %s", a.image, key)
	}
	var cfg prepare.Config
	if pf.PodManifest != "" {
		cfg.Manifest, err = prepare.LoadPodManifest(pf.PodManifest, st)
	} else {
		cfg.Manifest, _, err = prepare.BuildManifest(st, opts)
	}
	if err != nil {
		return nil, nil, err
	}
	if pf.Interactive && len(cfg.Manifest.Apps) > 1 {
		return nil, nil, usageErrorf("--interactive needs exactly one app, got %d", len(cfg.Manifest.Apps))
	}
	if cfg.Stage1Key, err = g.stage1Key(st, pf.stage1Flags); err != nil {
		return nil, nil, err
	}
	g.debugf("stage1 image %s", cfg.Stage1Key)
	if pf.isRun {
		err = checkNetwork(g, pf.runtimeFlags, cfg.Manifest, stage1NameIn(st, cfg.Stage1Key), "")
	} else {
		err = checkPortNames(cfg.Manifest)
	}
	if err != nil {
		return nil, nil, err
	}
	if pf.PrivateUsers {
		if err := checkPrivateUsers(st, cfg.Stage1Key); err != nil {
			return nil, nil, err
		}
	}
	cfg.DataDir, cfg.NoOverlay, cfg.Debugf = g.Dir, pf.NoOverlay, g.debugf
	p, err := prepare.Prepare(st, cfg)
	if err != nil {
		return nil, nil, err
	}
	g.debugf("pod %s prepared", p.UUID)
	g.markUsed(st, append(used, cfg.Stage1Key)...)
	if pf.UUIDFileSave != "" {
		if err := pod.WriteUUIDFile(pf.UUIDFileSave, p.UUID.String()); err != nil {
			p.Close()
			return nil, nil, fmt.Errorf("saving pod UUID to %s: %w", pf.UUIDFileSave, err)
		}
	}
	return p, st, nil
}

// prepareOptions gathers the pod-level options of the pod flags.
func (pf *podFlags) prepareOptions(g *globals) (prepare.Options, error) {
	opts := prepare.Options{InheritEnv: pf.InheritEnv, Warn: g.warnf}
	if err := pf.runtimeFlags.check(); err != nil {
		return opts, err
	}
	if pf.Hostname != "" {
		opts.Annotations.Set(hostnameAnnotation, pf.Hostname)
	}
	if pf.PrivateUsers {
		opts.Annotations.Set(privateUsersAnnotation, randomUIDRange())
	}
	var err error
	if opts.Volumes, err = parseVolumes(pf.Volumes); err != nil {
		return opts, err
	}
	if opts.Mounts, err = parseMounts(pf.Mounts); err != nil {
		return opts, err
	}
	if opts.Ports, err = parsePorts(pf.Ports); err != nil {
		return opts, err
	}
	if pf.SetEnvFile != "" {
		if opts.SetEnv, err = readEnvFile(pf.SetEnvFile); err != nil {
			return opts, err
		}
	}
	env, err := parseEnv(pf.SetEnv, "--set-env")
	if err != nil {
		return opts, err
	}
	for _, e := range env {
		opts.SetEnv.Set(e.Name, e.Value)
	}
	if opts.UserAnnotations, err = parseMap(pf.UserAnnotation, "--user-annotation"); err != nil {
		return opts, err
	}
	if opts.UserLabels, err = parseMap(pf.UserLabel, "--user-label"); err != nil {
		return opts, err
	}
	return opts, nil
}

// randomUIDRange picks the pod's uid range for --private-users as rkt did:
// 65536 ids at a random multiple of 65536, above the host's own ids.
func randomUIDRange() string {
	const count = 0x10000
	shift := uint64(1+rand.IntN(0x7fff-1)) * count
	return fmt.Sprintf("%d:%d", shift, count)
}

// checkPrivateUsers refuses --private-users before anything is written
// when the stage1 cannot honour it, rather than run the pod without a
// user namespace: fly has none. stage1-host checks its nspawn itself;
// other stage1s (rkt 1.30's) get the range.
func checkPrivateUsers(st *store.Store, stage1Key string) error {
	im, err := st.GetImageManifest(stage1Key)
	if err != nil {
		return fmt.Errorf("stage1 image %s: %w", shortImageID(stage1Key, 32), err)
	}
	if im.Name.String() == stage1.NameFly {
		return usageErrorf("--private-users: the fly stage1 has no user namespace; use the default stage1")
	}
	return nil
}
