// Command genman writes rkt's man pages (rkt.1, rkt-run.1, rkt-image-list.1
// ...) into a directory, generated from the command tree by cobra's doc
// package so that they never drift from the commands' own help. build.sh
// runs it when building the Debian package:
//
//	genman OUTDIR
//
// The pages' date is SOURCE_DATE_EPOCH's when set (reproducible builds).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra/doc"

	"github.com/rktng/rkt/stage0/cli"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "genman: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: genman OUTDIR")
	}
	dir := args[0]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	header := &doc.GenManHeader{
		Section: "1",
		Source:  "rkt " + cli.Version,
		Manual:  "rkt Manual",
	}
	if err := doc.GenManTree(cli.DocCommand(), header, dir); err != nil {
		return fmt.Errorf("writing man pages to %s: %w", dir, err)
	}
	return nil
}
