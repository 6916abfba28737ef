package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/stage2"
)

// AnnNotify on an app's image says the app sends sd_notify READY=1.
const AnnNotify = "appc.io/executor/supports-systemd-notify"

// ErrVolume is wrapped for volumes and mounts the pod cannot have.
var ErrVolume = errors.New("bad volume")

// app is one app of the pod with everything resolved on the host.
type app struct {
	name   string
	image  *schema.ImageManifest
	ra     *schema.RuntimeApp
	spec   *types.App
	mounts []bind
}

// bind is one bind mount nspawn makes into the pod, from a host path to a
// path inside the stage1 rootfs.
type bind struct {
	source, target       string
	readOnly, nonRecurse bool
}

func loadApps(podDir string, pm *schema.PodManifest) ([]*app, error) {
	var out []*app
	for i := range pm.Apps {
		ra := &pm.Apps[i]
		name := ra.Name.String()
		if strings.ContainsAny(name, "/") {
			return nil, fmt.Errorf("app %q: a name with / cannot name a unit", name)
		}
		b, err := os.ReadFile(pod.AppImageManifestPath(podDir, name))
		if err != nil {
			return nil, fmt.Errorf("reading image manifest of app %s: %w", name, err)
		}
		im := &schema.ImageManifest{}
		if err := im.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("parsing image manifest of app %s: %w", name, err)
		}
		spec := ra.App
		if spec == nil {
			spec = im.App
		}
		if spec == nil || len(spec.Exec) == 0 {
			return nil, fmt.Errorf("app %s: image %s has no app to run and the pod manifest gives none", name, im.Name)
		}
		out = append(out, &app{name: name, image: im, ra: ra, spec: spec})
	}
	if len(out) == 0 {
		return nil, errors.New("the pod manifest has no apps")
	}
	return out, nil
}

func (a *app) notify() bool {
	v, ok := a.image.GetAnnotation(AnnNotify)
	return ok && v == "true"
}

// stage2Config resolves the app's identity and environment against its
// rootfs as the host sees it.
func (a *app) stage2Config(podDir string, extraEnv map[string]string) (*stage2.App, error) {
	root := pod.AppRootfsPath(podDir, a.name)
	uid, err := stage2.ResolveUser(root, a.spec.User)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", a.name, err)
	}
	gid, err := stage2.ResolveGroup(root, a.spec.Group)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", a.name, err)
	}
	cfg := &stage2.App{
		Name:              a.name,
		Root:              "/" + filepath.Join("opt", "stage2", a.name, "rootfs"),
		Exec:              a.spec.Exec,
		WorkingDirectory:  a.spec.WorkingDirectory,
		UID:               uid,
		GID:               gid,
		SupplementaryGIDs: a.spec.SupplementaryGIDs,
		Environment:       appEnv(a.name, a.spec.Environment, extraEnv),
		Notify:            a.notify(),
		ReadOnlyRootFS:    a.ra.ReadOnlyRootFS,
	}
	for _, h := range a.spec.EventHandlers {
		switch h.Name {
		case "pre-start":
			cfg.PreStart = append(cfg.PreStart, h.Exec)
		case "post-stop":
			cfg.PostStop = append(cfg.PostStop, h.Exec)
		}
	}
	return cfg, nil
}

// appEnv is appc's environment for an app: the app's own variables, PATH
// when the app sets none, and the executor's variables, which the app
// cannot override.
func appEnv(name string, env types.Environment, extra map[string]string) []string {
	var out []string
	seen := map[string]bool{}
	fixed := map[string]string{"AC_APP_NAME": name, "container": "rkt"}
	for k, v := range extra {
		fixed[k] = v
	}
	for _, e := range env {
		if _, ok := fixed[e.Name]; ok || seen[e.Name] {
			continue
		}
		seen[e.Name] = true
		out = append(out, e.Name+"="+e.Value)
	}
	if !seen["PATH"] {
		out = append([]string{"PATH=" + stage2.DefaultPath}, out...)
	}
	keys := make([]string, 0, len(fixed))
	for k := range fixed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+fixed[k])
	}
	return out
}

// resolveMounts turns the app's mounts (and image mount points the pod
// manifest does not fill) into binds. An image mount point with no mount
// gets the pod volume of the same name, else an implicit empty volume, as
// rkt did for images converted from Docker.
func (a *app) resolveMounts(podDir string, volumes map[string]types.Volume) error {
	type mnt struct {
		vol  types.Volume
		path string
		ro   bool
	}
	var ms []mnt
	covered := map[string]bool{}
	mpByName := map[string]types.MountPoint{}
	for _, mp := range a.spec.MountPoints {
		mpByName[mp.Name.String()] = mp
	}
	for _, m := range a.ra.Mounts {
		v, ok := volumes[m.Volume.String()]
		if m.AppVolume != nil {
			v, ok = *m.AppVolume, true
		}
		if !ok {
			return fmt.Errorf("app %s: mount of volume %s: no such volume: %w", a.name, m.Volume, ErrVolume)
		}
		ro := v.ReadOnly != nil && *v.ReadOnly
		if mp, ok := mpByName[m.Volume.String()]; ok && mp.ReadOnly && v.ReadOnly == nil {
			ro = true
		}
		ms = append(ms, mnt{v, m.Path, ro})
		covered[m.Path] = true
		covered[m.Volume.String()] = true
	}
	for _, mp := range a.spec.MountPoints {
		if covered[mp.Path] || covered[mp.Name.String()] {
			continue
		}
		v, ok := volumes[mp.Name.String()]
		if !ok {
			v = types.Volume{Name: mp.Name, Kind: "empty"}
			volumes[mp.Name.String()] = v
		}
		ro := mp.ReadOnly
		if v.ReadOnly != nil {
			ro = *v.ReadOnly
		}
		ms = append(ms, mnt{v, mp.Path, ro})
	}
	root := pod.AppRootfsPath(podDir, a.name)
	rootfs := pod.Stage1RootfsPath(podDir)
	for _, m := range ms {
		src, err := volumeSource(podDir, m.vol)
		if err != nil {
			return fmt.Errorf("app %s: %w", a.name, err)
		}
		// The target is resolved as the app would see it, so that a
		// symlink in the image cannot point the volume outside the app.
		t, err := stage2.ResolveIn(root, m.path)
		if err != nil {
			return fmt.Errorf("app %s: mount target %s: %w", a.name, m.path, err)
		}
		rel, err := filepath.Rel(rootfs, t)
		if err != nil || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("app %s: mount target %s escapes the pod: %w", a.name, m.path, ErrVolume)
		}
		a.mounts = append(a.mounts, bind{
			source:     src,
			target:     "/" + rel,
			readOnly:   m.ro,
			nonRecurse: m.vol.Recursive != nil && !*m.vol.Recursive,
		})
	}
	sort.SliceStable(a.mounts, func(i, j int) bool {
		return strings.Count(a.mounts[i].target, "/") < strings.Count(a.mounts[j].target, "/")
	})
	return nil
}

// volumeSource is the host path of v; an empty volume is created in the
// pod directory (once, shared by every app mounting it) with its mode and
// owner.
func volumeSource(podDir string, v types.Volume) (string, error) {
	switch v.Kind {
	case "host":
		if _, err := os.Stat(v.Source); err != nil {
			return "", fmt.Errorf("volume %s: source %s: %w", v.Name, v.Source, err)
		}
		return v.Source, nil
	case "empty":
		dir := pod.EmptyVolumePath(podDir, v.Name.String())
		mode := os.FileMode(0o755)
		if v.Mode != nil {
			m, err := strconv.ParseUint(*v.Mode, 8, 32)
			if err != nil {
				return "", fmt.Errorf("volume %s: mode %q: %w", v.Name, *v.Mode, ErrVolume)
			}
			mode = os.FileMode(m & 0o777)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("creating volume %s: %w", v.Name, err)
		}
		uid, gid := 0, 0
		if v.UID != nil {
			uid = *v.UID
		}
		if v.GID != nil {
			gid = *v.GID
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", fmt.Errorf("creating volume %s: %w", v.Name, err)
		}
		// Chmod after chown: chown clears setuid/setgid bits.
		if err := os.Chmod(dir, mode|(os.FileMode(modeExtra(v.Mode)))); err != nil {
			return "", fmt.Errorf("creating volume %s: %w", v.Name, err)
		}
		return dir, nil
	default:
		return "", fmt.Errorf("volume %s: unknown kind %q: %w", v.Name, v.Kind, ErrVolume)
	}
}

// modeExtra maps the setuid, setgid and sticky bits of an octal mode
// string to os.FileMode's own bits, which os.Chmod expects.
func modeExtra(mode *string) os.FileMode {
	if mode == nil {
		return 0
	}
	m, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil {
		return 0
	}
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}
