package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Annotations of converted images, as docker2aci wrote them.
const (
	AnnOriginalName  = "appc.io/docker/originalname"
	AnnRegistryURL   = "appc.io/docker/registryurl"
	AnnRepository    = "appc.io/docker/repository"
	AnnTag           = "appc.io/docker/tag"
	AnnImageID       = "appc.io/docker/imageid"
	AnnParentImageID = "appc.io/docker/parentimageid"
	AnnEntrypoint    = "appc.io/docker/entrypoint"
	AnnCmd           = "appc.io/docker/cmd"
	AnnManifestHash  = "appc.io/docker/manifesthash"
)

// ImageName is the appc name of a converted image:
// registry/repository, with characters appc names cannot hold replaced
// ("127.0.0.1:5000/app" becomes "127.0.0.1_5000/app").
func ImageName(ref *Reference) (types.ACIdentifier, error) {
	s, err := types.SanitizeACIdentifier(ref.Registry() + "/" + ref.Repository())
	if err != nil {
		return "", fmt.Errorf("naming docker image %s: %w", ref.Original, err)
	}
	id, err := types.NewACIdentifier(s)
	if err != nil {
		return "", fmt.Errorf("naming docker image %s: %w", ref.Original, err)
	}
	return *id, nil
}

// ImageManifest converts the image's configuration into an appc image
// manifest, reading the config blob (not the layers).
func (im *Image) ImageManifest() (*schema.ImageManifest, error) {
	cfg, err := im.img.ConfigFile()
	if err != nil {
		return nil, describe(im.Ref, "reading image config", err)
	}
	cfgName, err := im.img.ConfigName()
	if err != nil {
		return nil, describe(im.Ref, "reading image config digest", err)
	}
	layers, err := im.img.Layers()
	if err != nil {
		return nil, describe(im.Ref, "listing layers", err)
	}
	parent := ""
	if len(layers) > 1 {
		if d, err := layers[len(layers)-2].Digest(); err == nil {
			parent = d.String()
		}
	}
	return buildManifest(im.Ref, im.Digest.String(), cfgName.String(), parent, cfg)
}

// buildManifest follows docker2aci: exec is entrypoint followed by cmd,
// user/group default to 0, a lone user is also the group, exposed ports are
// named like "80-tcp", volumes become mount points "volume-<path>".
func buildManifest(ref *Reference, manifestDigest, imageID, parentID string, cfg *v1.ConfigFile) (*schema.ImageManifest, error) {
	n, err := ImageName(ref)
	if err != nil {
		return nil, err
	}
	m := schema.BlankImageManifest()
	m.Name = n

	labels := map[types.ACIdentifier]string{}
	// A pinned image is labelled with the digest asked for (an index's
	// digest for a multi-platform image).
	version := ref.Tag()
	if version == "" {
		version = ref.Digest()
	}
	labels["version"] = version
	goos, goarch := cfg.OS, cfg.Architecture
	if goos == "" {
		goos = "linux"
	}
	if os, arch, err := types.ToAppcOSArch(goos, goarch, cfg.Variant); err == nil {
		labels["os"], labels["arch"] = os, arch
	} else if goarch != "" {
		labels["os"], labels["arch"] = goos, goarch
	}
	if m.Labels, err = types.LabelsFromMap(labels); err != nil {
		return nil, fmt.Errorf("labels of docker image %s: %w", ref.Original, err)
	}

	var ann types.Annotations
	set := func(k, v string) {
		if v != "" {
			ann.Set(*types.MustACIdentifier(k), v)
		}
	}
	set("author", cfg.Author)
	if !cfg.Created.IsZero() {
		set("created", cfg.Created.UTC().Format(time.RFC3339))
	}
	set(AnnOriginalName, ref.Original)
	set(AnnRegistryURL, ref.Registry())
	set(AnnRepository, ref.Repository())
	set(AnnTag, ref.Tag())
	set(AnnImageID, imageID)
	set(AnnParentImageID, parentID)
	set(AnnManifestHash, manifestDigest)

	c := cfg.Config
	if len(c.Entrypoint) > 0 {
		b, _ := json.Marshal(c.Entrypoint)
		set(AnnEntrypoint, string(b))
	}
	if len(c.Cmd) > 0 {
		b, _ := json.Marshal(c.Cmd)
		set(AnnCmd, string(b))
	}
	m.Annotations = ann

	user, group := dockerUser(c.User)
	app := &types.App{
		Exec:             append(append(types.Exec{}, c.Entrypoint...), c.Cmd...),
		User:             user,
		Group:            group,
		WorkingDirectory: c.WorkingDir,
	}
	if app.WorkingDirectory != "" && !path.IsAbs(app.WorkingDirectory) {
		app.WorkingDirectory = "/" + app.WorkingDirectory
	}
	for _, kv := range c.Env {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			app.Environment.Set(k, v)
		}
	}
	if app.Ports, err = ports(c.ExposedPorts); err != nil {
		return nil, fmt.Errorf("ports of docker image %s: %w", ref.Original, err)
	}
	if app.MountPoints, err = mountPoints(c.Volumes); err != nil {
		return nil, fmt.Errorf("volumes of docker image %s: %w", ref.Original, err)
	}
	m.App = app
	// A config appc cannot express (an environment name with a space, a
	// relative exec path...) is refused here, by name, rather than by a
	// chain of MarshalJSON errors when the ACI is written.
	if _, err := m.MarshalJSON(); err != nil {
		return nil, fmt.Errorf("docker image %s: its config makes no valid appc manifest: %s", ref.Original, strings.ReplaceAll(err.Error(), "json: error calling MarshalJSON for type ", ""))
	}
	return m, nil
}

func dockerUser(u string) (string, string) {
	if u == "" {
		return "0", "0"
	}
	user, group, ok := strings.Cut(u, ":")
	if !ok {
		return user, user
	}
	return user, group
}

// ports converts "80/tcp" into a port named "80-tcp".
func ports(exposed map[string]struct{}) ([]types.Port, error) {
	var out []types.Port
	for spec := range exposed {
		num, proto, ok := strings.Cut(spec, "/")
		if !ok {
			proto = "tcp"
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err == nil && n == 0 {
			err = errors.New("port 0")
		}
		if err != nil {
			return nil, fmt.Errorf("exposed port %q: %w", spec, err)
		}
		sn, err := types.SanitizeACName(num + "-" + proto)
		if err != nil {
			return nil, fmt.Errorf("exposed port %q: %w", spec, err)
		}
		out = append(out, types.Port{Name: *types.MustACName(sn), Protocol: proto, Port: uint(n), Count: 1})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func mountPoints(vols map[string]struct{}) ([]types.MountPoint, error) {
	paths := make([]string, 0, len(vols))
	for p := range vols {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	seen := map[string]int{}
	var out []types.MountPoint
	for _, p := range paths {
		sn, err := types.SanitizeACName("volume-" + strings.Trim(p, "/"))
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", p, err)
		}
		if i := seen[sn]; i > 0 {
			seen[sn] = i + 1
			sn = fmt.Sprintf("%s-%d", sn, i)
		} else {
			seen[sn] = 1
		}
		out = append(out, types.MountPoint{Name: *types.MustACName(sn), Path: p})
	}
	return out, nil
}
