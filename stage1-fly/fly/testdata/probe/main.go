// Command probe is the app the fly tests run inside a pod: a static
// toolbox that reports what the app sees. Usage: probe CMD [ARGS...], with
// several commands separated by ";" arguments.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	for len(args) > 0 {
		cmd := args
		args = nil
		for i, a := range cmd {
			if a == ";" {
				cmd, args = cmd[:i], cmd[i+1:]
				break
			}
		}
		if len(cmd) > 0 {
			do(cmd[0], cmd[1:])
		}
	}
}

func fail(format string, a ...any) {
	fmt.Printf("probe: "+format+"\n", a...)
	os.Exit(1)
}

func do(cmd string, args []string) {
	switch cmd {
	case "echo":
		fmt.Println(strings.Join(args, " "))
	case "exit":
		n, _ := strconv.Atoi(args[0])
		os.Exit(n)
	case "env":
		env := os.Environ()
		sort.Strings(env)
		for _, kv := range env {
			fmt.Println(kv)
		}
	case "id":
		groups, _ := syscall.Getgroups()
		sort.Ints(groups)
		fmt.Printf("uid=%d gid=%d groups=%v\n", os.Getuid(), os.Getgid(), groups)
	case "pwd":
		wd, err := os.Getwd()
		if err != nil {
			fail("pwd: %v", err)
		}
		fmt.Println(wd)
	case "cat":
		b, err := os.ReadFile(args[0])
		if err != nil {
			fail("cat: %v", err)
		}
		os.Stdout.Write(b)
	case "write":
		if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
			fmt.Printf("write %s: %v\n", args[0], err)
			return
		}
		fmt.Printf("wrote %s\n", args[0])
	case "stat":
		var st syscall.Stat_t
		if err := syscall.Stat(args[0], &st); err != nil {
			fail("stat: %v", err)
		}
		fmt.Printf("%s mode=%o uid=%d gid=%d\n", args[0], st.Mode&0o7777, st.Uid, st.Gid)
	case "fds":
		// Descriptors inherited besides stdio. The Go runtime keeps the
		// cgroup CPU files open for GOMAXPROCS: those are the probe's own.
		entries, _ := os.ReadDir("/proc/self/fd")
		var fds []string
		for _, e := range entries {
			if n, _ := strconv.Atoi(e.Name()); n > 2 {
				if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && !strings.HasPrefix(target, "/proc/") && !strings.HasPrefix(target, "/sys/fs/cgroup/") {
					fds = append(fds, e.Name()+"->"+target)
				}
			}
		}
		fmt.Printf("fds=%v\n", fds)
	case "wait":
		// Report readiness, then wait for SIGTERM (exit 42) or args[0] seconds.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready")
		secs, _ := strconv.Atoi(args[0])
		select {
		case <-c:
			fmt.Println("got SIGTERM")
			os.Exit(42)
		case <-time.After(time.Duration(secs) * time.Second):
		}
	default:
		fail("unknown command %q", cmd)
	}
}
