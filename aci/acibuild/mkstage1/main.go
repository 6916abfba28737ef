// Command mkstage1 builds a stage1 image of this tree from its sources: the
// Go binaries, the rootfs laid out as the stage1 expects it, and a manifest
// generated from the contract's constants (common/stage1), so that the
// entrypoint annotations and the interface version are written in one
// place. build.sh, tests/testutil and the stage1s' own tests all pack their
// stage1 images with it.
//
//	mkstage1 [--src DIR] [--dir IMAGEDIR] [--version V] [--build-id ID] fly|host [OUT.aci]
//	mkstage1 [--src DIR] build-id
//
// --dir keeps the image directory (manifest + rootfs/, what the stage1
// conformance suite takes); OUT.aci is written through a temporary file and
// renamed into place. At least one of them is required. Both images carry
// the build ID of their sources (buildid.go; --build-id gives it, as
// build.sh does so that rkt and the images get one value); `build-id`
// prints it, for linking into rkt.
//
//	fly   stage1-fly: /fly and the entrypoints /run, /enter, /stop, /gc
//	      linked to it
//	host  stage1-host: the host's systemd, journald, systemctl and
//	      journalctl with the libraries they load, stage1/units, the
//	      stage1-host and stage2 binaries and the CNI plugins of
//	      stage1/cni-plugins.txt (built from the module proxy at the pinned
//	      version). The host's systemd is used on purpose: the pod runs the
//	      systemd the host was tested with, and nothing else is downloaded.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/common/stage1"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkstage1:", err)
		os.Exit(1)
	}
}

// flavor is what differs between the stage1 images of this tree.
type flavor struct {
	name    string
	version string // the version label unless --version says otherwise
	// entrypoints maps annotation names to paths in the rootfs.
	entrypoints map[string]string
	// assemble builds the binaries from src and lays out rootfs; it
	// returns annotations to add (beyond the entrypoints).
	assemble func(src, rootfs, tmp string) (map[string]string, error)
}

// The entrypoints of each flavor: annotation -> path in the rootfs.
var (
	flyEntrypoints = map[string]string{
		stage1.AnnRun: "/run", stage1.AnnEnter: "/enter", stage1.AnnStop: "/stop", stage1.AnnGC: "/gc",
	}
	hostEntrypoints = map[string]string{
		stage1.AnnRun: "/init", stage1.AnnEnter: "/enter", stage1.AnnStop: "/stop", stage1.AnnGC: "/gc",
	}
)

var flavors = map[string]flavor{
	"fly": {
		name:        stage1.NameFly,
		version:     "1.31.0", // rkt's (stage0/cli/version.go)
		entrypoints: flyEntrypoints,
		assemble:    assembleFly,
	},
	"host": {
		name:        stage1.NameHost,
		version:     "0.1.0",
		entrypoints: hostEntrypoints,
		assemble:    assembleHost,
	},
}

func run(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("mkstage1", flag.ContinueOnError)
	fl.SetOutput(stderr)
	src := fl.String("src", "", "the source tree (default: the module containing the working directory)")
	dir := fl.String("dir", "", "write the image directory (manifest + rootfs/) here")
	version := fl.String("version", os.Getenv("STAGE1_VERSION"), "the image's version label (default: the flavor's; $STAGE1_VERSION)")
	buildID := fl.String("build-id", "", "the images' build annotation (default: computed from --src)")
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: mkstage1 [--src DIR] [--dir IMAGEDIR] [--version V] [--build-id ID] fly|host [OUT.aci]\n       mkstage1 [--src DIR] build-id")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() == 1 && fl.Arg(0) == "build-id" {
		root, err := srcRoot(*src)
		if err != nil {
			return err
		}
		id, err := sourceID(root)
		if err != nil {
			return fmt.Errorf("build ID of %s: %w", root, err)
		}
		_, err = fmt.Fprintln(stdout, id)
		return err
	}
	if fl.NArg() < 1 || fl.NArg() > 2 || (fl.NArg() == 1 && *dir == "") {
		fl.Usage()
		return errors.New("a flavor and --dir, OUT.aci or both are required")
	}
	f, ok := flavors[fl.Arg(0)]
	if !ok {
		return fmt.Errorf("flavor %q: want fly or host", fl.Arg(0))
	}
	if *version != "" {
		f.version = *version
	}
	root, err := srcRoot(*src)
	if err != nil {
		return err
	}
	*src = root
	if *buildID == "" {
		if *buildID, err = sourceID(root); err != nil {
			return fmt.Errorf("build ID of %s: %w", root, err)
		}
	}
	tmp, err := os.MkdirTemp("", "mkstage1-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	image := *dir
	if image == "" {
		image = filepath.Join(tmp, "image")
	}
	m, err := pack(f, *src, image, tmp, *buildID)
	if err != nil {
		return err
	}
	if fl.NArg() == 2 {
		out := fl.Arg(1)
		return acibuild.WriteFile(out, func(w *bufio.Writer) error {
			if err := acibuild.BuildFromDir(w, m, filepath.Join(image, "rootfs")); err != nil {
				return fmt.Errorf("packing %s: %w", out, err)
			}
			return nil
		})
	}
	return nil
}

// pack lays out the image directory: rootfs/ and manifest.
func pack(f flavor, src, image, tmp, buildID string) (*schema.ImageManifest, error) {
	rootfs := filepath.Join(image, "rootfs")
	if err := os.RemoveAll(rootfs); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return nil, err
	}
	extra, err := f.assemble(src, rootfs, tmp)
	if err != nil {
		return nil, err
	}
	if extra == nil {
		extra = map[string]string{}
	}
	extra[stage1.AnnBuild] = buildID
	m, err := manifest(f, extra)
	if err != nil {
		return nil, err
	}
	b, err := m.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return m, os.WriteFile(filepath.Join(image, "manifest"), b, 0o644)
}

// manifest is the flavor's image manifest: its entrypoints and extra
// annotations at the contract's interface version.
func manifest(f flavor, extra map[string]string) (*schema.ImageManifest, error) {
	arch := os.Getenv("GOARCH")
	if arch == "" {
		arch = runtime.GOARCH
	}
	m, err := acibuild.Manifest(f.name, map[string]string{"version": f.version, "os": "linux", "arch": arch})
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", f.name, err)
	}
	anns := map[string]string{stage1.AnnInterfaceVersion: strconv.Itoa(stage1.InterfaceVersion)}
	for k, v := range f.entrypoints {
		anns[k] = v
	}
	for k, v := range extra {
		anns[k] = v
	}
	for _, k := range []string{stage1.AnnRun, stage1.AnnEnter, stage1.AnnGC, stage1.AnnStop, stage1.AnnInterfaceVersion, stage1.AnnSystemdVersion, stage1.AnnBuild} {
		if v, ok := anns[k]; ok {
			m.Annotations.Set(types.ACIdentifier(k), v)
		}
	}
	return m, nil
}

// assembleFly: one static binary, /fly, and the entrypoints as symlinks to
// it (it picks its role from argv[0]).
func assembleFly(src, rootfs, _ string) (map[string]string, error) {
	if err := goBuild(src, filepath.Join(rootfs, "fly"), "./stage1-fly"); err != nil {
		return nil, err
	}
	return nil, layoutFly(rootfs)
}

func layoutFly(rootfs string) error {
	for _, e := range flyEntrypoints {
		if err := os.Symlink("fly", filepath.Join(rootfs, strings.TrimPrefix(e, "/"))); err != nil {
			return err
		}
	}
	return contractDirs(rootfs)
}

// contractDirs creates the directories the contract names in a stage1
// rootfs: rkt 1.30's stage0 touches rkt/status (and fails without it).
func contractDirs(rootfs string) error {
	for _, d := range []string{stage1.StatusDir, stage1.EnvDir} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// goBuild builds pkg of the tree at src as a static binary.
func goBuild(src, out, pkg string, env ...string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = src
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// srcRoot is the source tree: src, or the module around the working
// directory.
func srcRoot(src string) (string, error) {
	if src != "" {
		return filepath.Abs(src)
	}
	return moduleRoot()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the rkt module: give --src")
	}
	return filepath.Dir(mod), nil
}
