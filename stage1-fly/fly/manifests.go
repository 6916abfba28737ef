package fly

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// fly reads the pod and image manifests into the few fields it uses, and
// names pod files itself, instead of importing appc's schema packages and
// common/pod: their package initialisers (regexps, semver, crypto, big
// numbers) and the bigger binary cost more than a millisecond on every
// `rkt run`, which is most of fly's budget. stage0 validated the manifests
// when it wrote them. fly_test.go checks the paths against common/pod.

// Pod directory names (common/pod/layout.go).
const (
	podManifestFile = "pod"
	pidFile         = "pid"
)

func stage1RootfsPath(podDir string) string { return filepath.Join(podDir, "stage1", "rootfs") }

func appRootfsPath(podDir, app string) string {
	return filepath.Join(stage1RootfsPath(podDir), "opt", "stage2", app, "rootfs")
}

func appImageManifestPath(podDir, app string) string {
	return filepath.Join(podDir, "appsinfo", app, "manifest")
}

func emptyVolumePath(podDir, volume string) string {
	return filepath.Join(stage1RootfsPath(podDir), "rkt", "volumes", volume)
}

// podManifest is the part of an appc pod manifest fly needs.
type podManifest struct {
	Apps      []runtimeApp
	Volumes   []volume
	Isolators []isolator
}

type runtimeApp struct {
	Name           string
	App            *appSection
	ReadOnlyRootFS bool
	Mounts         []mount
}

type mount struct {
	Volume    string
	Path      string
	AppVolume *volume
}

type volume struct {
	Name      string
	Kind      string
	Source    string
	ReadOnly  *bool
	Recursive *bool
	Mode      *string
	UID       *int
	GID       *int
}

type isolator struct {
	Name string
}

// appSection is appc's app section (types.App).
type appSection struct {
	Exec              []string
	User              string
	Group             string
	SupplementaryGIDs []int
	WorkingDirectory  string
	Environment       []envVar
	MountPoints       []mountPoint
	Isolators         []isolator
}

type envVar struct {
	Name  string
	Value string
}

type mountPoint struct {
	Name     string
	Path     string
	ReadOnly bool
}

type imageManifest struct {
	Name string
	App  *appSection
}

// readFile reads a small file with plain system calls: os.ReadFile would
// also set up the runtime's poller, which fly never needs.
func readFile(p string) ([]byte, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 16*1024)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// readPodManifest reads the pod manifest in podDir.
func readPodManifest(podDir string) (*podManifest, error) {
	p := filepath.Join(podDir, podManifestFile)
	b, err := readFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading pod manifest: %w", err)
	}
	var d decoder
	root := d.object(d.parse(b), "")
	if kind := d.str(root, "acKind"); d.err == nil && kind != "PodManifest" {
		return nil, fmt.Errorf("pod manifest %s: acKind is %q, not PodManifest", p, kind)
	}
	pm := &podManifest{}
	for _, v := range d.array(root, "apps") {
		a := d.object(v, "apps[]")
		ra := runtimeApp{Name: d.str(a, "name"), ReadOnlyRootFS: d.boolean(a, "readOnlyRootFS")}
		if _, ok := a["app"]; ok {
			ra.App = d.app(d.object(a["app"], "app"))
		}
		for _, mv := range d.array(a, "mounts") {
			m := d.object(mv, "mounts[]")
			mt := mount{Volume: d.str(m, "volume"), Path: d.str(m, "path")}
			if av, ok := m["appVolume"]; ok && av != nil {
				v := d.volume(d.object(av, "appVolume"))
				mt.AppVolume = &v
			}
			ra.Mounts = append(ra.Mounts, mt)
		}
		pm.Apps = append(pm.Apps, ra)
	}
	for _, v := range d.array(root, "volumes") {
		pm.Volumes = append(pm.Volumes, d.volume(d.object(v, "volumes[]")))
	}
	pm.Isolators = d.isolators(root)
	if d.err != nil {
		return nil, fmt.Errorf("parsing pod manifest %s: %w", p, d.err)
	}
	return pm, nil
}

// readImageManifest reads the image manifest stage0 copied for the app. A
// missing one is not an error: the pod manifest's app is complete.
func readImageManifest(podDir, appName string) (*imageManifest, error) {
	p := appImageManifestPath(podDir, appName)
	b, err := readFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading image manifest of app %s: %w", appName, err)
	}
	var d decoder
	root := d.object(d.parse(b), "")
	im := &imageManifest{Name: d.str(root, "name")}
	if a, ok := root["app"]; ok && a != nil {
		im.App = d.app(d.object(a, "app"))
	}
	if d.err != nil {
		return nil, fmt.Errorf("parsing image manifest %s: %w", p, d.err)
	}
	return im, nil
}

// decoder pulls typed fields out of generically decoded JSON. Decoding
// into interfaces avoids building reflection caches for every struct type
// on the first json.Unmarshal, which alone takes about a millisecond. The
// first error sticks; later calls return zero values.
type decoder struct{ err error }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) parse(b []byte) any {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		d.fail("%w", err)
	}
	return v
}

func (d *decoder) object(v any, what string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok && v != nil {
		d.fail("%s: want an object", what)
	}
	return m
}

func (d *decoder) array(m map[string]any, key string) []any {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		d.fail("%s: want an array", key)
	}
	return a
}

func (d *decoder) str(m map[string]any, key string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		d.fail("%s: want a string", key)
	}
	return s
}

func (d *decoder) optStr(m map[string]any, key string) *string {
	if v, ok := m[key]; !ok || v == nil {
		return nil
	}
	s := d.str(m, key)
	return &s
}

func (d *decoder) boolean(m map[string]any, key string) bool {
	v, ok := m[key]
	if !ok || v == nil {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		d.fail("%s: want true or false", key)
	}
	return b
}

func (d *decoder) optBool(m map[string]any, key string) *bool {
	if v, ok := m[key]; !ok || v == nil {
		return nil
	}
	b := d.boolean(m, key)
	return &b
}

func (d *decoder) integer(v any, what string) int {
	f, ok := v.(float64)
	if !ok || f != float64(int(f)) {
		d.fail("%s: want an integer", what)
	}
	return int(f)
}

func (d *decoder) optInt(m map[string]any, key string) *int {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	n := d.integer(v, key)
	return &n
}

func (d *decoder) volume(m map[string]any) volume {
	return volume{
		Name:      d.str(m, "name"),
		Kind:      d.str(m, "kind"),
		Source:    d.str(m, "source"),
		ReadOnly:  d.optBool(m, "readOnly"),
		Recursive: d.optBool(m, "recursive"),
		Mode:      d.optStr(m, "mode"),
		UID:       d.optInt(m, "uid"),
		GID:       d.optInt(m, "gid"),
	}
}

func (d *decoder) isolators(m map[string]any) []isolator {
	var out []isolator
	for _, v := range d.array(m, "isolators") {
		out = append(out, isolator{Name: d.str(d.object(v, "isolators[]"), "name")})
	}
	return out
}

func (d *decoder) app(m map[string]any) *appSection {
	a := &appSection{
		User:             d.str(m, "user"),
		Group:            d.str(m, "group"),
		WorkingDirectory: d.str(m, "workingDirectory"),
		Isolators:        d.isolators(m),
	}
	for _, v := range d.array(m, "exec") {
		s, ok := v.(string)
		if !ok {
			d.fail("exec: want strings")
		}
		a.Exec = append(a.Exec, s)
	}
	for _, v := range d.array(m, "supplementaryGIDs") {
		a.SupplementaryGIDs = append(a.SupplementaryGIDs, d.integer(v, "supplementaryGIDs[]"))
	}
	for _, v := range d.array(m, "environment") {
		e := d.object(v, "environment[]")
		a.Environment = append(a.Environment, envVar{Name: d.str(e, "name"), Value: d.str(e, "value")})
	}
	for _, v := range d.array(m, "mountPoints") {
		mp := d.object(v, "mountPoints[]")
		a.MountPoints = append(a.MountPoints, mountPoint{Name: d.str(mp, "name"), Path: d.str(mp, "path"), ReadOnly: d.boolean(mp, "readOnly")})
	}
	return a
}
