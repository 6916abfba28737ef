// Command mkaci packs a manifest and a rootfs directory into an ACI:
//
//	mkaci --manifest FILE.json --rootfs DIR [--gzip] [--preserve-owner] OUT.aci
//
// OUT is written to a temporary file beside it and renamed into place, so it
// is either the complete image or absent (an older OUT stays until then).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/appc/spec/schema"

	"github.com/rktng/rkt/aci/acibuild"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkaci:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("mkaci", flag.ContinueOnError)
	manifest := fl.String("manifest", "", "image manifest (JSON)")
	rootfs := fl.String("rootfs", "", "directory to pack as rootfs/")
	gz := fl.Bool("gzip", false, "compress with gzip")
	owner := fl.Bool("preserve-owner", false, "keep on-disk owners instead of 0:0")
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: mkaci --manifest FILE.json --rootfs DIR [--gzip] [--preserve-owner] OUT.aci")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *manifest == "" || *rootfs == "" || fl.NArg() != 1 {
		fl.Usage()
		return errors.New("--manifest, --rootfs and one output file are required")
	}
	out := fl.Arg(0)

	data, err := os.ReadFile(*manifest)
	if err != nil {
		return err
	}
	var m schema.ImageManifest
	if err := m.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("manifest %s: %w", *manifest, err)
	}
	var opts []acibuild.Option
	if *gz {
		opts = append(opts, acibuild.WithGzip())
	}
	if *owner {
		opts = append(opts, acibuild.PreserveOwner())
	}
	return acibuild.WriteFile(out, func(w *bufio.Writer) error {
		return acibuild.BuildFromDir(w, &m, *rootfs, opts...)
	})
}
