package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/rktng/rkt/aci/docker/layercache"
	"github.com/rktng/rkt/aci/migrate"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/common/libexec"
	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/stage0/images"
)

// Default stage1 images, looked up next to the rkt binary
// (../stage1-images/, for a build tree) and in the system's stage1 images
// directory.
const (
	defaultStage1File     = "stage1-host.aci"
	systemStage1ImagesDir = libexec.Dir + "/stage1-images"
)

// dockerLayers is where docker layers are kept for later conversions.
func (g *globals) dockerLayers() *layercache.Cache {
	return &layercache.Cache{Dir: filepath.Join(g.Dir, "docker-layers")}
}

// pruneDockerLayers drops the kept docker layers no stored image is made
// of any more.
func (g *globals) pruneDockerLayers(st *store.Store) error {
	_, err := g.dockerLayers().Prune(func(key string) bool {
		_, err := st.Info(key)
		return err == nil
	})
	return err
}

func (g *globals) openStore() (*store.Store, error) {
	cas := filepath.Join(g.Dir, "cas")
	s, err := store.Open(cas)
	if err != nil {
		return nil, fmt.Errorf("opening image store in %s: %w", g.Dir, err)
	}
	cfg, err := g.config()
	if err != nil {
		return nil, err
	}
	s.Limits = store.Limits{MaxImageSize: cfg.Paths.ImageSizeLimit, MaxRenderedSize: cfg.Paths.RenderedSizeLimit}
	if migrate.Pending(cas) {
		if err := g.migrateStore(s, migrate.Options{}, false); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// resolver builds the image resolver for this invocation.
func (g *globals) resolver(st *store.Store, policy string) (*images.Resolver, error) {
	pp, err := images.ParsePullPolicy(policy)
	if err != nil {
		return nil, usageError{err}
	}
	r := &images.Resolver{Store: st, InsecureImage: g.insecure.Image, Policy: pp, NoRender: g.fetchOnly}
	if err := useNetworkFetcher(g, r); err != nil {
		return nil, err
	}
	return r, nil
}

// stage1ImagesDirs are where --stage1-from-dir and the default stage1 are
// looked up, in order.
func (g *globals) stage1ImagesDirs() []string {
	var dirs []string
	if cfg, err := g.config(); err == nil && cfg.Paths.Stage1Images != "" {
		dirs = append(dirs, cfg.Paths.Stage1Images)
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			dirs = append(dirs, filepath.Join(filepath.Dir(exe), "..", "stage1-images"))
		}
	}
	return append(dirs, systemStage1ImagesDir)
}

// stage1Key resolves the stage1 flags to a store key. Stage1 images from
// local paths are trusted as the binary itself is: an administrator put
// them there.
func (g *globals) stage1Key(st *store.Store, f stage1Flags) (string, error) {
	set := 0
	for _, v := range []string{f.Stage1Path, f.Stage1URL, f.Stage1Name, f.Stage1Hash, f.Stage1FromDir} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return "", usageErrorf("only one of --stage1-path, --stage1-url, --stage1-name, --stage1-hash, --stage1-from-dir may be given")
	}
	local := &images.Resolver{Store: st, InsecureImage: true, Policy: images.PullNew}
	switch {
	case f.Stage1Path != "":
		return local.Resolve(absPath(f.Stage1Path), "")
	case f.Stage1Hash != "":
		return local.Resolve(f.Stage1Hash, "")
	case f.Stage1URL != "", f.Stage1Name != "":
		r, err := g.resolver(st, "new")
		if err != nil {
			return "", err
		}
		if f.Stage1URL != "" {
			return r.Resolve(f.Stage1URL, "")
		}
		return r.Resolve(f.Stage1Name, "")
	}
	file := defaultStage1File
	if f.Stage1FromDir != "" {
		file = f.Stage1FromDir
	} else if cfg, err := g.config(); err == nil && cfg.Stage1.Location != "" {
		// stage1.d names the default stage1 by location (a path or URL).
		if filepath.IsAbs(cfg.Stage1.Location) {
			return local.Resolve(cfg.Stage1.Location, "")
		}
		r, err := g.resolver(st, "new")
		if err != nil {
			return "", err
		}
		return r.Resolve(cfg.Stage1.Location, "")
	} else if err == nil && cfg.Stage1.Name != "" {
		ref := cfg.Stage1.Name
		if cfg.Stage1.Version != "" {
			ref += ":" + cfg.Stage1.Version
		}
		if key, err := local.Resolve(ref, ""); err == nil {
			return key, nil
		}
	}
	var tried []string
	for _, d := range g.stage1ImagesDirs() {
		p := filepath.Join(d, file)
		if _, err := os.Stat(p); err == nil {
			return local.Resolve(filepath.Clean(p), "")
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("stage1 image %s not found (looked in %v): %w", file, tried, os.ErrNotExist)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// loadPod finds a pod by UUID or prefix, or by --uuid-file.
func (g *globals) loadPod(arg, uuidFile string) (*pod.Pod, error) {
	if uuidFile != "" {
		if arg != "" {
			return nil, usageErrorf("give either a UUID or --uuid-file, not both")
		}
		u, err := pod.ReadUUIDFile(uuidFile)
		if err != nil {
			return nil, fmt.Errorf("reading --uuid-file: %w", err)
		}
		arg = u
	}
	if arg == "" {
		return nil, usageErrorf("no pod UUID given")
	}
	// pod.Load's errors name the pod already.
	return pod.Load(g.Dir, arg)
}

// markUsed records that the images of keys were used; failure only costs
// "last used" accuracy, never the command.
func (g *globals) markUsed(st *store.Store, keys ...string) {
	if err := st.MarkUsed(time.Now(), keys...); err != nil {
		g.debugf("recording use of images: %v", err)
	}
}

// forEachPod runs do for each pod argument, or for the pod of --uuid-file,
// going on past failures and reporting them all.
func forEachPod(g *globals, uuidFile string, args []string, do func(g *globals, uuidFile, arg string) error) error {
	if uuidFile != "" {
		if len(args) > 0 {
			return usageErrorf("give either UUIDs or --uuid-file, not both")
		}
		args = []string{""}
	}
	if len(args) == 0 {
		return usageErrorf("no pod UUID given")
	}
	var errs *multierror.Error
	for _, a := range args {
		if err := do(g, uuidFile, a); err != nil {
			errs = appendErr(errs, err)
		}
	}
	return errs.ErrorOrNil()
}
