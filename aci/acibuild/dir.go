package acibuild

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/appc/spec/schema"
)

// BuildFromDir writes an ACI whose rootfs is the tree at rootfs, walked in
// lexical order. Owners are 0:0 unless PreserveOwner is given; modes and
// mtimes (to the second) are kept; files with several links become one
// regular entry and hardlinks to it; sockets are skipped. Device nodes and
// fifos are refused, because the store refuses images holding them.
func BuildFromDir(w io.Writer, m *schema.ImageManifest, rootfs string, opts ...Option) error {
	o := buildOptions(opts)
	st, err := os.Stat(rootfs)
	if err != nil {
		return fmt.Errorf("building image %q: %w", m.Name, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("building image %q: rootfs %s is not a directory", m.Name, rootfs)
	}
	iw := newImageWriter(w, o)
	if err := iw.writeManifest(m, o.modTime); err != nil {
		return err
	}
	type inode struct{ dev, ino uint64 }
	links := map[inode]string{}
	buf := make([]byte, 1<<20)
	walkErr := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(rootfs, p)
		if err != nil {
			return err
		}
		name := "rootfs"
		if rel != "." {
			name = "rootfs/" + filepath.ToSlash(rel)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, Mode: tarMode(info.Mode()), ModTime: info.ModTime().Truncate(1e9)}
		sys, _ := info.Sys().(*syscall.Stat_t)
		if o.preserveOwner && sys != nil {
			hdr.Uid, hdr.Gid = int(sys.Uid), int(sys.Gid)
		}
		var body *os.File
		switch mode := info.Mode(); {
		case mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case mode&os.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			if hdr.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		case mode&os.ModeSocket != 0:
			return nil
		case mode.IsRegular():
			hdr.Typeflag = tar.TypeReg
			if sys != nil && sys.Nlink > 1 {
				key := inode{uint64(sys.Dev), sys.Ino}
				if first, ok := links[key]; ok {
					hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
					break
				}
				links[key] = name
			}
			hdr.Size = info.Size()
			if body, err = os.Open(p); err != nil {
				return err
			}
			defer body.Close()
		default:
			return fmt.Errorf("%s: unsupported file type %v (device nodes and fifos are refused in images)", p, mode.Type())
		}
		if err := iw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if body != nil {
			// The size is in the header already: a file that changes
			// under us must fail the build, not corrupt the archive.
			if _, err := io.CopyBuffer(iw, io.LimitReader(body, hdr.Size), buf); err != nil {
				return fmt.Errorf("writing %s: %w", name, err)
			}
		}
		return nil
	})
	if walkErr != nil {
		return fmt.Errorf("building image %q from %s: %w", m.Name, rootfs, walkErr)
	}
	if err := iw.Close(); err != nil {
		return fmt.Errorf("finishing image %q: %w", m.Name, err)
	}
	return nil
}
