package testutil

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"runtime"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/aci/acibuild"
)

// Image is a test image before it is packed: a manifest and rootfs files.
// Tests change either freely, then write it with Ctx.WriteImage.
type Image struct {
	Manifest *schema.ImageManifest
	Files    []acibuild.File
	Gzip     bool
}

// Users of the inspect images, for --user/--group tests.
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\n" +
		"user1:x:1000:1000:user one:/home/user1:/bin/false\n" +
		"user2:x:1001:1001:user two:/:/bin/false\n"
	Group = "root:x:0:\n" +
		"group1:x:1000:\n" +
		"group2:x:1001:user1\n" +
		"staff:x:2000:user1,user2\n"
)

// InspectImage returns an image named name (version 1.0.0, this host's os
// and arch) whose app runs /inspect with args as root, with an /etc/passwd
// and /etc/group for the users above and an empty /tmp.
func (a *Artifacts) InspectImage(name string, args ...string) *Image {
	m, err := acibuild.Manifest(name, map[string]string{
		"version": "1.0.0", "os": runtime.GOOS, "arch": runtime.GOARCH,
	})
	if err != nil {
		panic(fmt.Sprintf("inspect image %q: %v", name, err))
	}
	m.App = &types.App{
		Exec:  append(types.Exec{"/inspect"}, args...),
		User:  "0",
		Group: "0",
	}
	return &Image{
		Manifest: m,
		Files: []acibuild.File{
			{Path: "inspect", Mode: 0o755, Data: a.inspectBin},
			{Path: "etc", Mode: 0o755, Type: tar.TypeDir},
			{Path: "etc/passwd", Mode: 0o644, Data: []byte(Passwd)},
			{Path: "etc/group", Mode: 0o644, Data: []byte(Group)},
			{Path: "tmp", Mode: 0o1777 | os.ModeSticky, Type: tar.TypeDir},
		},
	}
}

// SetEnv adds an environment variable to the image's app.
func (im *Image) SetEnv(name, value string) *Image {
	im.Manifest.App.Environment.Set(name, value)
	return im
}

// AddFile adds a regular file to the rootfs.
func (im *Image) AddFile(path, content string, mode os.FileMode) *Image {
	im.Files = append(im.Files, acibuild.File{Path: path, Mode: mode, Data: []byte(content)})
	return im
}

// AddMountPoint declares a mount point of the app.
func (im *Image) AddMountPoint(name, path string, readOnly bool) *Image {
	n := types.MustACName(name)
	im.Manifest.App.MountPoints = append(im.Manifest.App.MountPoints,
		types.MountPoint{Name: *n, Path: path, ReadOnly: readOnly})
	return im
}

// Bytes packs the image as an ACI.
func (im *Image) Bytes() ([]byte, error) {
	var opts []acibuild.Option
	if im.Gzip {
		opts = append(opts, acibuild.WithGzip())
	}
	var buf bytes.Buffer
	if err := acibuild.Build(&buf, im.Manifest, im.Files, opts...); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteImage packs im into the scratch directory and returns the path.
func (c *Ctx) WriteImage(im *Image) string {
	c.T.Helper()
	b, err := im.Bytes()
	if err != nil {
		c.T.Fatalf("packing image %s: %v", im.Manifest.Name, err)
	}
	return c.WriteBytes(fmt.Sprintf("image-%d.aci", c.next()), b)
}

// WriteBytes writes a scratch file and returns its path.
func (c *Ctx) WriteBytes(name string, b []byte) string {
	c.T.Helper()
	p := c.Path(name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		c.T.Fatal(err)
	}
	return p
}

// InspectACI writes an inspect image running /inspect with args and
// returns its path: the common case.
func (c *Ctx) InspectACI(args ...string) string {
	c.T.Helper()
	return c.WriteImage(c.A.InspectImage("example.com/inspect", args...))
}

// WriteRaw writes an arbitrary (even malicious) tar of entries and returns
// its path.
func (c *Ctx) WriteRaw(name string, entries []acibuild.RawEntry) string {
	c.T.Helper()
	var buf bytes.Buffer
	if err := acibuild.RawEntries(&buf, entries); err != nil {
		c.T.Fatalf("writing raw archive %s: %v", name, err)
	}
	return c.WriteBytes(name, buf.Bytes())
}

// ManifestJSON returns m as JSON, for raw archives.
func ManifestJSON(m *schema.ImageManifest) []byte {
	b, err := m.MarshalJSON()
	if err != nil {
		panic(err)
	}
	return b
}
