// Command rkt is the rkt CLI (stage0). All the work is in stage0/cli; this
// is the process's only exit point.
package main

import (
	"os"

	"github.com/rktng/rkt/stage0/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
