// Command hello is the sample app that build.sh packs as the bundled sample
// image (example.com/hello): it shows what a pod looks like from inside.
package main

import (
	"fmt"
	"os"
)

func main() {
	host, _ := os.Hostname()
	wd, _ := os.Getwd()
	fmt.Printf("Hello from rkt! I am app %q in pod %q.\n", os.Getenv("AC_APP_NAME"), host)
	fmt.Printf("pid=%d uid=%d gid=%d cwd=%s\n", os.Getpid(), os.Getuid(), os.Getgid(), wd)
	if len(os.Args) > 1 {
		fmt.Printf("args=%q\n", os.Args[1:])
	}
}
