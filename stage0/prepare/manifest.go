// Package prepare builds a pod directory from images and command-line
// options: the pod manifest, each app's image manifest and tree store ID,
// and (without overlay) copies of the rendered rootfs. The pod ends up in
// the "prepared" state; stage0/launch runs it.
package prepare

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// ErrBadApp is wrapped when an app's options or image cannot make an app.
var ErrBadApp = errors.New("invalid app")

// App is one app of the pod as the command line describes it.
type App struct {
	Image    string // the argument, for messages
	ImageKey string // store key
	Name     string // --name; default: the image name's last element

	Exec              string   // --exec
	Args              []string // after "--"
	WorkingDir        string
	User, Group       string
	SupplementaryGIDs []int
	ReadOnlyRootFS    bool
	Mounts            []schema.Mount
	Environment       types.Environment // --environment
	Annotations       types.Annotations
	UserAnnotations   types.UserAnnotations
	UserLabels        types.UserLabels
	Isolators         types.Isolators
}

// Options are the pod-level options.
type Options struct {
	Apps            []App
	Volumes         []types.Volume
	Mounts          []schema.Mount // --mount before the first image: all apps
	Ports           []types.ExposedPort
	SetEnv          types.Environment // --set-env-file then --set-env
	InheritEnv      bool
	Annotations     types.Annotations
	UserAnnotations types.UserAnnotations
	UserLabels      types.UserLabels
	// Warn receives warnings (implicit volumes...).
	Warn func(format string, args ...any)
}

// Images gives the image manifests of store keys.
type Images interface {
	GetImageManifest(key string) (*schema.ImageManifest, error)
}

var nonACName = regexp.MustCompile(`[^a-z0-9-]+`)

// defaultAppName derives an app name from an image name the way rkt does:
// its last path element, made a valid ACName.
func defaultAppName(imageName string) string {
	n := strings.ToLower(path.Base(imageName))
	n = strings.Trim(nonACName.ReplaceAllString(n, "-"), "-")
	if n == "" {
		n = "app"
	}
	return n
}

// BuildManifest makes the pod manifest for opts.
func BuildManifest(imgs Images, opts Options) (*schema.PodManifest, map[string]*schema.ImageManifest, error) {
	pm := schema.BlankPodManifest()
	pm.Volumes = append(pm.Volumes, opts.Volumes...)
	pm.Ports = opts.Ports
	pm.Annotations = opts.Annotations
	pm.UserAnnotations = opts.UserAnnotations
	pm.UserLabels = opts.UserLabels
	manifests := map[string]*schema.ImageManifest{}
	volumes := map[types.ACName]bool{}
	for _, v := range pm.Volumes {
		if volumes[v.Name] {
			return nil, nil, fmt.Errorf("volume %q given twice: %w", v.Name, ErrBadApp)
		}
		volumes[v.Name] = true
	}
	if len(opts.Apps) == 0 {
		return nil, nil, fmt.Errorf("no image given: %w", ErrBadApp)
	}
	for _, a := range opts.Apps {
		im, err := imgs.GetImageManifest(a.ImageKey)
		if err != nil {
			return nil, nil, fmt.Errorf("reading manifest of image %s: %w", a.Image, err)
		}
		ra, err := runtimeApp(a, im, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("app from image %s: %w", a.Image, err)
		}
		if pm.Apps.Get(ra.Name) != nil {
			return nil, nil, fmt.Errorf("app name %q used twice (give one of them --name): %w", ra.Name, ErrBadApp)
		}
		// Every mount point the image declares needs a volume; rkt creates an
		// empty one when the user gave none, and so do we.
		for _, mp := range ra.App.MountPoints {
			if hasMountAt(ra.Mounts, mp) {
				continue
			}
			if !volumes[mp.Name] {
				empty := types.Volume{Name: mp.Name, Kind: "empty"}
				mode, uid, gid := "0755", 0, 0
				empty.Mode, empty.UID, empty.GID = &mode, &uid, &gid
				pm.Volumes = append(pm.Volumes, empty)
				volumes[mp.Name] = true
				if opts.Warn != nil {
					opts.Warn("no volume given for mount point %q of app %q: using an empty volume, removed with the pod", mp.Name, ra.Name)
				}
			}
			ra.Mounts = append(ra.Mounts, schema.Mount{Volume: mp.Name, Path: mp.Path})
		}
		for _, m := range ra.Mounts {
			if m.AppVolume == nil && !volumes[m.Volume] {
				return nil, nil, fmt.Errorf("app %q mounts volume %q, which is not defined (add --volume %s,kind=...): %w", ra.Name, m.Volume, m.Volume, ErrBadApp)
			}
		}
		pm.Apps = append(pm.Apps, *ra)
		manifests[ra.Name.String()] = im
	}
	return pm, manifests, nil
}

func hasMountAt(mounts []schema.Mount, mp types.MountPoint) bool {
	for _, m := range mounts {
		if m.Volume == mp.Name || path.Clean(m.Path) == path.Clean(mp.Path) {
			return true
		}
	}
	return false
}

func runtimeApp(a App, im *schema.ImageManifest, opts Options) (*schema.RuntimeApp, error) {
	name := a.Name
	if name == "" {
		name = defaultAppName(im.Name.String())
	}
	acn, err := types.NewACName(name)
	if err != nil {
		return nil, fmt.Errorf("app name %q: %v: %w", name, err, ErrBadApp)
	}
	app := &types.App{User: "0", Group: "0"}
	if im.App != nil {
		c := *im.App
		app = &c
		app.Exec = append(types.Exec(nil), im.App.Exec...)
	}
	if a.Exec != "" {
		app.Exec = types.Exec{a.Exec}
	}
	app.Exec = append(app.Exec, a.Args...)
	if len(app.Exec) == 0 {
		return nil, fmt.Errorf("image %s has no app to run (give --exec): %w", im.Name, ErrBadApp)
	}
	if a.WorkingDir != "" {
		app.WorkingDirectory = a.WorkingDir
	}
	if a.User != "" {
		app.User = a.User
	}
	if a.Group != "" {
		app.Group = a.Group
	}
	if a.SupplementaryGIDs != nil {
		app.SupplementaryGIDs = a.SupplementaryGIDs
	}
	app.Environment = mergeEnv(opts, a, app.Environment)
	app.Isolators = mergeIsolators(app.Isolators, a.Isolators)
	if len(a.UserAnnotations) > 0 {
		app.UserAnnotations = a.UserAnnotations
	}
	if len(a.UserLabels) > 0 {
		app.UserLabels = a.UserLabels
	}
	ra := &schema.RuntimeApp{
		Name:           *acn,
		Image:          schema.RuntimeImage{Name: &im.Name, Labels: im.Labels},
		App:            app,
		ReadOnlyRootFS: a.ReadOnlyRootFS,
		Annotations:    a.Annotations,
	}
	h, err := types.NewHash(a.ImageKey)
	if err != nil {
		return nil, fmt.Errorf("image key %q: %w", a.ImageKey, err)
	}
	ra.Image.ID = *h
	ra.Mounts = append(append([]schema.Mount(nil), opts.Mounts...), a.Mounts...)
	return ra, nil
}

// mergeEnv gives the app's environment, lowest first: the host's
// (--inherit-env), the image's, --set-env-file/--set-env, --environment.
// The stage1 lays it over the image's environment again, which changes
// nothing since the image's values are already in it.
func mergeEnv(opts Options, a App, image types.Environment) types.Environment {
	var env types.Environment
	if opts.InheritEnv {
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
				env.Set(k, v)
			}
		}
	}
	for _, e := range image {
		env.Set(e.Name, e.Value)
	}
	for _, e := range opts.SetEnv {
		env.Set(e.Name, e.Value)
	}
	for _, e := range a.Environment {
		env.Set(e.Name, e.Value)
	}
	return env
}

// mergeIsolators overrides the image's isolators with the command line's,
// by isolator name (appc: the pod manifest's wins).
func mergeIsolators(image, cli types.Isolators) types.Isolators {
	if len(cli) == 0 {
		return image
	}
	var out types.Isolators
	over := map[types.ACIdentifier]bool{}
	for _, i := range cli {
		over[i.Name] = true
	}
	for _, i := range image {
		if !over[i.Name] {
			out = append(out, i)
		}
	}
	return append(out, cli...)
}
