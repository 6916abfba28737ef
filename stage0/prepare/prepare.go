package prepare

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
)

// Store is what preparing needs from the image store (aci/store).
type Store interface {
	Images
	RenderTree(key string) (string, error)
	TreeRootfs(treeID string) string
}

// Config says what pod to prepare.
type Config struct {
	DataDir   string
	Stage1Key string
	// Manifest is the pod manifest: from BuildManifest, or --pod-manifest.
	Manifest *schema.PodManifest
	// NoOverlay copies the rendered rootfs instead of overlay mounts at run
	// time; it is also chosen when overlay does not work on DataDir.
	NoOverlay bool
	Debugf    func(format string, args ...any)
}

// Prepare creates the pod directory and leaves the pod prepared and
// unlocked. On failure the pod stays in prepare/ unlocked (an aborted
// prepare) for gc to remove, exactly as when rkt is killed while preparing.
func Prepare(st Store, cfg Config) (*pod.Pod, error) {
	p, err := pod.NewPod(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("creating pod directory: %w", err)
	}
	if err := fill(st, cfg, p); err != nil {
		p.Close()
		return nil, fmt.Errorf("preparing pod %s: %w", p.UUID, err)
	}
	if err := p.ToPrepared(); err != nil {
		p.Close()
		return nil, fmt.Errorf("preparing pod %s: %w", p.UUID, err)
	}
	return p, nil
}

func fill(st Store, cfg Config, p *pod.Pod) error {
	dir := p.Path()
	s1m, err := st.GetImageManifest(cfg.Stage1Key)
	if err != nil {
		return fmt.Errorf("stage1 image %s: %w", cfg.Stage1Key, err)
	}
	if _, ok := s1m.Annotations.Get(stage1.AnnRun); !ok {
		return fmt.Errorf("image %s (%s) is not a stage1: no %s annotation", s1m.Name, cfg.Stage1Key, stage1.AnnRun)
	}
	s1tree, err := st.RenderTree(cfg.Stage1Key)
	if err != nil {
		return fmt.Errorf("rendering stage1 image %s: %w", cfg.Stage1Key, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, pod.Stage1Dir), 0o755); err != nil {
		return err
	}
	if err := writeJSON(pod.Stage1ManifestPath(dir), s1m); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, pod.Stage1TreeFile), s1tree); err != nil {
		return err
	}
	trees := map[string]string{}
	for _, ra := range cfg.Manifest.Apps {
		name := ra.Name.String()
		key := ra.Image.ID.String()
		im, err := st.GetImageManifest(key)
		if err != nil {
			return fmt.Errorf("app %s: image %s: %w", name, key, err)
		}
		tree, err := st.RenderTree(key)
		if err != nil {
			return fmt.Errorf("rendering image %s of app %s: %w", key, name, err)
		}
		trees[name] = tree
		if err := os.MkdirAll(pod.AppsInfoPath(dir, name), 0o755); err != nil {
			return err
		}
		if err := writeJSON(pod.AppImageManifestPath(dir, name), im); err != nil {
			return err
		}
		if err := writeFile(pod.AppTreeStoreIDPath(dir, name), tree); err != nil {
			return err
		}
	}
	useOverlay := !cfg.NoOverlay
	if useOverlay && !overlayKnownGood(cfg.DataDir) {
		if err := probeOverlay(dir, st.TreeRootfs(s1tree)); err == nil {
			markOverlayGood(cfg.DataDir)
		} else {
			useOverlay = false
			if cfg.Debugf != nil {
				cfg.Debugf("overlay does not work under %s (%v): copying rootfs instead", cfg.DataDir, err)
			}
		}
	}
	if useOverlay {
		if err := writeFile(filepath.Join(dir, pod.OverlayMarker), ""); err != nil {
			return err
		}
	} else {
		if err := CopyTree(st.TreeRootfs(s1tree), pod.Stage1RootfsPath(dir)); err != nil {
			return fmt.Errorf("copying stage1 rootfs: %w", err)
		}
		for name, tree := range trees {
			if err := CopyTree(st.TreeRootfs(tree), pod.AppRootfsPath(dir, name)); err != nil {
				return fmt.Errorf("copying rootfs of app %s: %w", name, err)
			}
		}
	}
	// The manifest goes last: a pod directory with a pod manifest is whole.
	return writeJSON(filepath.Join(dir, pod.ManifestFile), cfg.Manifest)
}

// overlayStamp records, per filesystem of the data directory, that an
// overlay mount worked there, so that the probe runs once, not every run.
const overlayStamp = "overlay-ok"

func overlayKnownGood(dataDir string) bool {
	b, err := os.ReadFile(filepath.Join(dataDir, overlayStamp))
	return err == nil && string(b) == fsID(dataDir)
}

func markOverlayGood(dataDir string) {
	if id := fsID(dataDir); id != "" {
		_ = writeFile(filepath.Join(dataDir, overlayStamp), id)
	}
}

// fsID names the filesystem holding dir (device and type), so a data
// directory moved to another filesystem is probed again.
func fsID(dir string) string {
	var st unix.Stat_t
	var fs unix.Statfs_t
	if unix.Stat(dir, &st) != nil || unix.Statfs(dir, &fs) != nil {
		return ""
	}
	return fmt.Sprintf("%d:%x", st.Dev, fs.Type)
}

// probeOverlay mounts and unmounts a throwaway overlay in the pod directory:
// overlay refuses some upper filesystems (overlay itself, some FUSE/NFS), and
// finding out now lets prepare fall back to copies instead of failing at run.
func probeOverlay(podDir, lower string) error {
	probe := filepath.Join(podDir, "overlay-probe")
	defer os.RemoveAll(probe)
	up, work, mnt := filepath.Join(probe, "u"), filepath.Join(probe, "w"), filepath.Join(probe, "m")
	for _, d := range []string{up, work, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	data := "lowerdir=" + lower + ",upperdir=" + up + ",workdir=" + work
	// "volatile" (Linux 5.10) because unmounting an overlay otherwise
	// syncs its whole upper filesystem: on a first run that is the image
	// just imported, 0.3-1 s of writeback for a 200 MiB image, for a
	// probe that wrote nothing. Kernels without it refuse the option and
	// are probed without.
	err := unix.Mount("overlay", mnt, "overlay", 0, data+",volatile")
	if err != nil {
		err = unix.Mount("overlay", mnt, "overlay", 0, data)
	}
	if err != nil {
		return fmt.Errorf("mount overlay: %w", err)
	}
	return unix.Unmount(mnt, unix.MNT_DETACH)
}

// CopyTree copies a rendered rootfs with everything cp -a keeps (owners,
// modes, links, xattrs); reflinks make it cheap where the filesystem can.
func CopyTree(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-a", "--reflink=auto", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", filepath.Base(path), err)
	}
	return writeFile(path, string(b))
}

// writeFile writes atomically: the files of a pod directory are read by
// other rkt processes (list, status) while it is being prepared.
func writeFile(path, data string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// LoadPodManifest reads a --pod-manifest file and checks its images are in
// the store.
func LoadPodManifest(path string, imgs Images) (*schema.PodManifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading pod manifest %s: %w", path, err)
	}
	pm := &schema.PodManifest{}
	if err := unmarshalPodManifest(b, pm); err != nil {
		return nil, fmt.Errorf("pod manifest %s: %w", path, err)
	}
	if len(pm.Apps) == 0 {
		return nil, fmt.Errorf("pod manifest %s has no apps: %w", path, ErrBadApp)
	}
	names := map[types.ACName]bool{}
	for i := range pm.Apps {
		ra := &pm.Apps[i]
		if ra.Name.Empty() || names[ra.Name] {
			return nil, fmt.Errorf("pod manifest %s: app %d: missing or duplicate name %q: %w", path, i+1, ra.Name, ErrBadApp)
		}
		names[ra.Name] = true
		im, err := imgs.GetImageManifest(ra.Image.ID.String())
		if err != nil {
			return nil, fmt.Errorf("pod manifest %s: app %s: image %s: %w", path, ra.Name, ra.Image.ID, err)
		}
		if ra.App == nil {
			if im.App == nil {
				return nil, fmt.Errorf("pod manifest %s: app %s: neither it nor its image has an app section: %w", path, ra.Name, ErrBadApp)
			}
			c := *im.App
			ra.App = &c
		}
	}
	// What parses may still not serialize (appc checks some fields, such
	// as acVersion, only when writing): refuse it now, by name, rather
	// than when the pod is half made.
	if _, err := pm.MarshalJSON(); err != nil {
		return nil, fmt.Errorf("pod manifest %s: %s", path, strings.ReplaceAll(err.Error(), "json: error calling MarshalJSON for type ", ""))
	}
	return pm, nil
}

// unmarshalPodManifest turns a panic of appc's parser (an isolator with
// no value) into an error.
func unmarshalPodManifest(b []byte, pm *schema.PodManifest) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the appc manifest parser failed on it: %v", r)
		}
	}()
	return json.Unmarshal(b, pm)
}
