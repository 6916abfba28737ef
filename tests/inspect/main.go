// Command inspect is the one program the functional tests run inside pods.
// It is built static (CGO_ENABLED=0) and packed as the test ACIs' only
// binary, so that a test can observe a pod from the inside without a shell
// or libc in the image.
//
// Every flag is an action; actions run in the order given on the command
// line, which lets one invocation both observe and act (for example write a
// file, then wait for another, then exit with a code). Output lines have a
// fixed "key=value" or "<<<...>>>" shape that the tests parse. Arguments
// that are not flags are ignored here (print them with --print-args), so
// `rkt run IMAGE -- a b` works.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// action is one step of the program; a non-nil error ends it with exit
// status 1 (distinct from the codes tests ask for with --exit-code).
type action func() error

var (
	actions  []action
	exitCode int
)

func add(name, usage string, fn func(string) error) {
	flag.Func(name, usage, func(v string) error {
		actions = append(actions, func() error { return fn(v) })
		return nil
	})
}

func addBool(name, usage string, fn func() error) {
	flag.BoolFunc(name, usage, func(v string) error {
		if b, err := strconv.ParseBool(v); err != nil || !b {
			return err
		}
		actions = append(actions, fn)
		return nil
	})
}

func main() {
	registerFlags()
	flag.CommandLine.Init("inspect", flag.ContinueOnError)
	if err := flag.CommandLine.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	for _, a := range actions {
		if err := a(); err != nil {
			fmt.Fprintf(os.Stderr, "inspect: %v\n", err)
			os.Exit(1)
		}
	}
	os.Exit(exitCode)
}

func registerFlags() {
	add("print-msg", "print MSG on stdout", func(v string) error { fmt.Println(v); return nil })
	add("print-msg-stderr", "print MSG on stderr", func(v string) error { fmt.Fprintln(os.Stderr, v); return nil })
	add("print-env", "print NAME=value for each comma-separated NAME (<unset> when unset)", printEnv)
	addBool("print-env-all", "print the whole environment, sorted, between ENV<<< and >>>ENV", printEnvAll)
	addBool("print-cwd", "print cwd=<dir>", printCwd)
	add("check-cwd", "fail unless the working directory is DIR", checkCwd)
	addBool("print-user", "print uid, euid, gid, egid and supplementary groups", printUser)
	addBool("print-args", "print argv as a JSON array: args=[...]", printArgs)
	addBool("print-pid", "print pid=<pid> ppid=<ppid>", func() error {
		fmt.Printf("pid=%d ppid=%d\n", os.Getpid(), os.Getppid())
		return nil
	})
	addBool("print-hostname", "print hostname=<name>", printHostname)
	add("print-ns", "print ns-NAME=<link> for namespace NAME (ipc, uts, net...)", func(v string) error {
		l, err := os.Readlink("/proc/self/ns/" + v)
		if err != nil {
			return err
		}
		fmt.Printf("ns-%s=%s\n", v, l)
		return nil
	})
	add("read-file", "print the content of PATH between <<< and >>>", readFile)
	add("write-file", "PATH:CONTENT writes CONTENT (mode 0644) to PATH", writeFile)
	add("append-file", "PATH:CONTENT appends CONTENT to PATH", appendFile)
	add("stat-file", "print PATH's type, mode, uid and gid, or PATH: missing", statFile)
	add("list-dir", "print the sorted names in DIR, one per line, between DIR<<< and >>>DIR", listDir)
	add("wait-file", "wait (up to 60s) until PATH exists", waitFile)
	add("print-status", "print the comma-separated fields of /proc/self/status (CapBnd, CapEff, Seccomp, NoNewPrivs...)", printStatus)
	addBool("print-cgroup", "print /proc/self/cgroup between CGROUP<<< and >>>CGROUP", printCgroup)
	addBool("print-cgroup-limits", "print memory.limit=... and cpu.quota=... of the process' own cgroups", printCgroupLimits)
	addBool("print-mounts", "print /proc/self/mountinfo between MOUNTS<<< and >>>MOUNTS", printMounts)
	add("check-mount", "print PATH's line of /proc/self/mountinfo as mount=<fields>, or mount=none", checkMount)
	add("syscall", "try NAME (getpid, chroot, mount, sethostname, unshare, ptrace, socket, reboot): print syscall NAME=ok|<errno>", trySyscall)
	add("alloc-mb", "allocate and touch N MiB, print allocated=N", allocMB)
	add("busy", "spin on the CPU for DURATION", busy)
	add("busy-cpu", "spin until the process has used DURATION of CPU time", busyCPU)
	add("sleep", "sleep DURATION (Go duration or seconds)", sleep)
	addBool("read-stdin", "read stdin to EOF, print stdin=<<<...>>>", readStdin)
	addBool("read-line", "read one line from stdin, print line=<line>", readLine)
	addBool("check-tty", "print tty=true|false for stdin", checkTTY)
	add("notify", "send STATE (e.g. READY=1) to $NOTIFY_SOCKET", notify)
	add("on-sigterm", "from now on, SIGTERM prints got=SIGTERM and exits with CODE", onSigterm)
	addBool("print-ifaces", "print iface=<name> addrs=<a,b> for each network interface", printIfaces)
	add("serve-tcp", "ADDR: answer every TCP connection on ADDR with a line served=<hostname>, in the background", serveTCP)
	add("dial-tcp", "ADDR: connect (3s timeout), print dial=<line read> or dial=error", dialTCP)
	add("exit-code", "exit with CODE once every action ran", func(v string) error {
		n, err := strconv.Atoi(v)
		exitCode = n
		return err
	})
	add("exit-now", "exit with CODE right away", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		os.Exit(n)
		return nil
	})
}

func printEnv(v string) error {
	for _, name := range strings.Split(v, ",") {
		if val, ok := os.LookupEnv(name); ok {
			fmt.Printf("%s=%s\n", name, val)
		} else {
			fmt.Printf("%s=<unset>\n", name)
		}
	}
	return nil
}

func printEnvAll() error {
	env := os.Environ()
	sort.Strings(env)
	fmt.Println("ENV<<<")
	for _, kv := range env {
		fmt.Println(kv)
	}
	fmt.Println(">>>ENV")
	return nil
}

func printCwd() error {
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("getting the working directory: %w", err)
	}
	fmt.Printf("cwd=%s\n", wd)
	return nil
}

func checkCwd(want string) error {
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("getting the working directory: %w", err)
	}
	if wd != want {
		return fmt.Errorf("working directory is %q, want %q", wd, want)
	}
	return nil
}

func printUser() error {
	groups, err := syscall.Getgroups()
	if err != nil {
		return fmt.Errorf("getgroups: %w", err)
	}
	sort.Ints(groups)
	gs := make([]string, len(groups))
	for i, g := range groups {
		gs[i] = strconv.Itoa(g)
	}
	fmt.Printf("uid=%d euid=%d gid=%d egid=%d groups=%s\n",
		os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), strings.Join(gs, ","))
	return nil
}

func printArgs() error {
	b, err := json.Marshal(os.Args)
	if err != nil {
		return err
	}
	fmt.Printf("args=%s\n", b)
	return nil
}

func printHostname() error {
	h, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	fmt.Printf("hostname=%s\n", h)
	return nil
}

func readFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	fmt.Printf("<<<%s>>>\n", b)
	return nil
}

func splitPathContent(v string) (string, string, error) {
	path, content, ok := strings.Cut(v, ":")
	if !ok {
		return "", "", fmt.Errorf("%q: want PATH:CONTENT", v)
	}
	return path, content, nil
}

func writeFile(v string) error {
	path, content, err := splitPathContent(v)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func appendFile(v string) error {
	path, content, err := splitPathContent(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("appending to %s: %w", path, err)
	}
	return f.Close()
}

func statFile(path string) error {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		fmt.Printf("%s: missing\n", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	kind := "file"
	switch {
	case fi.IsDir():
		kind = "dir"
	case fi.Mode()&os.ModeSymlink != 0:
		kind = "symlink"
	case fi.Mode()&os.ModeDevice != 0:
		kind = "device"
	case fi.Mode()&os.ModeNamedPipe != 0:
		kind = "fifo"
	case fi.Mode()&os.ModeSocket != 0:
		kind = "socket"
	}
	fmt.Printf("%s: type=%s mode=%04o uid=%d gid=%d size=%d\n", path, kind, st.Mode&0o7777, st.Uid, st.Gid, fi.Size())
	return nil
}

func listDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	fmt.Println("DIR<<<")
	for _, e := range ents {
		fmt.Println(e.Name())
	}
	fmt.Println(">>>DIR")
	return nil
}

func waitFile(path string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: timed out", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func printStatus(fields string) error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("reading /proc/self/status: %w", err)
	}
	vals := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			vals[k] = strings.TrimSpace(v)
		}
	}
	for _, f := range strings.Split(fields, ",") {
		v, ok := vals[f]
		if !ok {
			v = "<missing>"
		}
		fmt.Printf("%s=%s\n", f, v)
	}
	return nil
}

func printBlock(tag, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	fmt.Printf("%s<<<\n%s>>>%s\n", tag, b, tag)
	return nil
}

func printCgroup() error { return printBlock("CGROUP", "/proc/self/cgroup") }

func printMounts() error { return printBlock("MOUNTS", "/proc/self/mountinfo") }

// cgroupFile finds file for controller ctrl among the places a cgroup
// hierarchy shows up inside a container: the process' own cgroup path under
// the hierarchy's mount point, or the mount point itself when the container
// only sees its own subtree.
func cgroupFile(ctrl, file string) (string, bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var bases []string
		if parts[1] == "" {
			if ctrl != "" {
				// cgroup2: every controller's files live in one hierarchy.
				bases = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}
			}
		} else {
			for _, c := range strings.Split(parts[1], ",") {
				if c == ctrl {
					bases = []string{"/sys/fs/cgroup/" + parts[1], "/sys/fs/cgroup/" + ctrl}
				}
			}
		}
		for _, base := range bases {
			for _, dir := range []string{filepath.Join(base, parts[2]), base} {
				p := filepath.Join(dir, file)
				if _, err := os.Stat(p); err == nil {
					return p, true
				}
			}
		}
	}
	return "", false
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return strings.TrimSpace(string(b))
}

func printCgroupLimits() error {
	mem := "<none>"
	if p, ok := cgroupFile("memory", "memory.limit_in_bytes"); ok {
		mem = readTrim(p)
	} else if p, ok := cgroupFile("memory", "memory.max"); ok {
		mem = readTrim(p)
	}
	fmt.Printf("memory.limit=%s\n", mem)
	cpu := "<none>"
	if q, ok := cgroupFile("cpu", "cpu.cfs_quota_us"); ok {
		cpu = readTrim(q)
		if p, ok := cgroupFile("cpu", "cpu.cfs_period_us"); ok {
			cpu += " " + readTrim(p)
		}
	} else if p, ok := cgroupFile("cpu", "cpu.max"); ok {
		cpu = readTrim(p)
	}
	fmt.Printf("cpu.quota=%s\n", cpu)
	return nil
}

func checkMount(path string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("reading mountinfo: %w", err)
	}
	found := "none"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == path {
			found = line // the last one is the visible one
		}
	}
	fmt.Printf("mount=%s\n", found)
	return nil
}

func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := err.(syscall.Errno); ok {
		switch e {
		case syscall.EPERM:
			return "EPERM"
		case syscall.EACCES:
			return "EACCES"
		case syscall.ENOSYS:
			return "ENOSYS"
		case syscall.EINVAL:
			return "EINVAL"
		}
		return "errno" + strconv.Itoa(int(e))
	}
	return err.Error()
}

// trySyscall makes one system call that an isolator or seccomp filter may
// forbid, choosing arguments that change nothing when it is allowed.
func trySyscall(name string) error {
	var err error
	switch name {
	case "getpid":
		syscall.Getpid()
	case "chroot":
		err = syscall.Chroot("/")
	case "mount":
		dir, derr := os.MkdirTemp("", "inspect-mount")
		if derr != nil {
			return derr
		}
		defer os.Remove(dir)
		if err = syscall.Mount("none", dir, "tmpfs", 0, ""); err == nil {
			syscall.Unmount(dir, 0)
		}
	case "sethostname":
		var h string
		if h, err = os.Hostname(); err == nil {
			err = syscall.Sethostname([]byte(h))
		}
	case "unshare":
		err = syscall.Unshare(syscall.CLONE_NEWUTS)
	case "ptrace":
		_, _, e := syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_PEEKUSR, uintptr(os.Getppid()), 0)
		if e != 0 {
			err = e
		}
	case "socket":
		var fd int
		if fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0); err == nil {
			syscall.Close(fd)
		}
	case "reboot":
		// An invalid command: EINVAL when allowed, EPERM without
		// CAP_SYS_BOOT, ENOSYS/EPERM or a kill under seccomp.
		_, _, e := syscall.RawSyscall(syscall.SYS_REBOOT, 0, 0, 0)
		if e != 0 {
			err = e
		}
	default:
		return fmt.Errorf("unknown syscall %q", name)
	}
	fmt.Printf("syscall %s=%s\n", name, errnoName(err))
	return nil
}

var hoard [][]byte

func allocMB(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		hoard = append(hoard, b)
	}
	fmt.Printf("allocated=%d\n", n)
	return nil
}

func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

func busy(v string) error {
	d, err := parseDuration(v)
	if err != nil {
		return err
	}
	end := time.Now().Add(d)
	x := 0
	for time.Now().Before(end) {
		for i := 0; i < 100000; i++ {
			x += i
		}
	}
	fmt.Printf("busy=done %d\n", x%2)
	return nil
}

// busyCPU spins until the process has used d of CPU time, however long
// that takes: unlike busy, a loaded machine cannot make it ask for less
// CPU than a quota allows, so throttling is certain to show.
func busyCPU(v string) error {
	d, err := parseDuration(v)
	if err != nil {
		return err
	}
	x := 0
	for {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return fmt.Errorf("busy-cpu: %w", err)
		}
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= d {
			break
		}
		for i := 0; i < 100000; i++ {
			x += i
		}
	}
	fmt.Printf("busy-cpu=done %d\n", x%2)
	return nil
}

func sleep(v string) error {
	d, err := parseDuration(v)
	if err != nil {
		return err
	}
	time.Sleep(d)
	return nil
}

func readStdin() error {
	b, err := io.ReadAll(os.Stdin)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	fmt.Printf("stdin=<<<%s>>>\n", b)
	return nil
}

func readLine() error {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("reading stdin: %w", err)
	}
	fmt.Printf("line=%s\n", strings.TrimRight(line, "\n"))
	return nil
}

func checkTTY() error {
	_, err := ioctlGetTermios(0)
	fmt.Printf("tty=%t\n", err == nil)
	return nil
}

func notify(state string) error {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return fmt.Errorf("notify %q: NOTIFY_SOCKET is not set", state)
	}
	if strings.HasPrefix(sock, "@") {
		sock = "\x00" + sock[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify %q: %w", state, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify %q: %w", state, err)
	}
	fmt.Printf("notified=%s\n", state)
	return nil
}

func onSigterm(v string) error {
	code, err := strconv.Atoi(v)
	if err != nil {
		return err
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	go func() {
		<-ch
		fmt.Println("got=SIGTERM")
		os.Exit(code)
	}()
	return nil
}

func ioctlGetTermios(fd int) (*syscall.Termios, error) {
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	if e != 0 {
		return nil, e
	}
	return &t, nil
}

func printIfaces() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, i := range ifs {
		addrs, _ := i.Addrs()
		var as []string
		for _, a := range addrs {
			as = append(as, a.String())
		}
		fmt.Printf("iface=%s addrs=%s\n", i.Name, strings.Join(as, ","))
	}
	return nil
}

func serveTCP(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	fmt.Printf("serving=%s\n", l.Addr())
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "served=%s\n", host)
			c.Close()
		}
	}()
	return nil
}

func dialTCP(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		fmt.Printf("dial=error %v\n", err)
		return nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Printf("dial=error %v\n", err)
		return nil
	}
	fmt.Printf("dial=%s\n", strings.TrimSpace(line))
	return nil
}
