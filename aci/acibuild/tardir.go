package acibuild

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// TarDir writes the files under dir to dst as a plain tarball, with names
// relative to dir (directories end in "/"), as podman writes an OCI
// layout's oci-archive. It is for tests that need such an archive of a
// tree they made; an ACI is BuildFromDir's.
func TarDir(dst, dir string) (err error) {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(out)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		return tarEntry(tw, dir, p, d)
	})
	if err != nil {
		return fmt.Errorf("writing %s as a tarball: %w", dir, err)
	}
	return tw.Close()
}

func tarEntry(tw *tar.Writer, dir, p string, d fs.DirEntry) error {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return err
	}
	fi, err := d.Info()
	if err != nil {
		return err
	}
	h, err := tar.FileInfoHeader(fi, "")
	if err != nil {
		return err
	}
	h.Name = filepath.ToSlash(rel)
	if d.IsDir() {
		h.Name += "/"
	}
	if err := tw.WriteHeader(h); err != nil || !d.Type().IsRegular() {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
