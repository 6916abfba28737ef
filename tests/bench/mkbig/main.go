// Command mkbig writes a large ACI for the benchmarks: -files regular files
// of random (incompressible) data adding up to -size MiB, in 100 directories.
package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
)

func main() {
	size := flag.Int("size", 200, "total MiB")
	files := flag.Int("files", 10000, "number of files")
	out := flag.String("out", "big.aci", "output")
	flag.Parse()
	if err := write(*out, int64(*size)<<20, *files); err != nil {
		fmt.Fprintln(os.Stderr, "mkbig:", err)
		os.Exit(1)
	}
}

func write(out string, total int64, files int) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	manifest := []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"bench.example/big",` +
		`"labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],` +
		`"app":{"exec":["/bin/true"],"user":"0","group":"0"}}`)
	if err := tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(manifest)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(manifest); err != nil {
		return err
	}
	dirs := []string{"rootfs/", "rootfs/bin/", "rootfs/data/"}
	for i := 0; i < 100; i++ {
		dirs = append(dirs, fmt.Sprintf("rootfs/data/d%02d/", i))
	}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs/bin/busybox", Mode: 0o755, Size: int64(len(bb)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	tw.Write(bb)
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs/bin/true", Linkname: "busybox", Mode: 0o777, Typeflag: tar.TypeSymlink}); err != nil {
		return err
	}
	rnd := rand.New(rand.NewSource(1))
	per := total / int64(files)
	for i := 0; i < files; i++ {
		name := fmt.Sprintf("rootfs/data/d%02d/f%05d", i%100, i)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: per, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, rnd, per); err != nil {
			return err
		}
	}
	return tw.Close()
}
