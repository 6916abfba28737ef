// Package mountinfo reads the kernel's table of mounts
// (/proc/<pid>/mountinfo), mounts and unmounts with errors that name the
// mount, and removes every mount below a directory, which gc needs before it
// can delete a pod directory.
package mountinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Info is one line of /proc/<pid>/mountinfo (see proc(5)). Paths are
// unescaped.
type Info struct {
	ID, ParentID int
	Major, Minor int
	Root         string   // the root of the mount within its filesystem
	MountPoint   string   // relative to the reading process's root
	Options      string   // per-mount options
	Optional     []string // "shared:N", "master:N", "propagate_from:N", "unbindable"
	FSType       string
	Source       string
	SuperOptions string
}

// Read parses the mount table of the calling thread's mount namespace.
// /proc/thread-self is used rather than /proc/self because a thread that
// unshared its mount namespace sees different mounts than the process leader.
func Read() ([]Info, error) {
	return ReadFile("/proc/thread-self/mountinfo")
}

// ReadFile parses a mountinfo file, e.g. /proc/<pid>/mountinfo.
func ReadFile(path string) ([]Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading mount table: %w", err)
	}
	defer f.Close()
	infos, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return infos, nil
}

// Parse reads mountinfo lines from r.
func Parse(r io.Reader) ([]Info, error) {
	var out []Info
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		in, err := parseLine(string(line))
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n, line, err)
		}
		out = append(out, in)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// parseLine parses
// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
func parseLine(line string) (Info, error) {
	var in Info
	fields := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(fields) < sep+4 {
		return in, fmt.Errorf("malformed mountinfo line")
	}
	var err error
	if in.ID, err = strconv.Atoi(fields[0]); err != nil {
		return in, fmt.Errorf("mount ID: %w", err)
	}
	if in.ParentID, err = strconv.Atoi(fields[1]); err != nil {
		return in, fmt.Errorf("parent ID: %w", err)
	}
	maj, min, ok := strings.Cut(fields[2], ":")
	if !ok {
		return in, fmt.Errorf("device %q: want major:minor", fields[2])
	}
	if in.Major, err = strconv.Atoi(maj); err != nil {
		return in, fmt.Errorf("device major: %w", err)
	}
	if in.Minor, err = strconv.Atoi(min); err != nil {
		return in, fmt.Errorf("device minor: %w", err)
	}
	in.Root = Unescape(fields[3])
	in.MountPoint = Unescape(fields[4])
	in.Options = fields[5]
	if sep > 6 {
		in.Optional = fields[6:sep]
	}
	in.FSType = Unescape(fields[sep+1])
	in.Source = Unescape(fields[sep+2])
	in.SuperOptions = fields[sep+3]
	return in, nil
}

// Unescape undoes the kernel's octal escapes (\040 for a space, \011, \012,
// \134) in a mountinfo field. Malformed escapes are kept as they are.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			v, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 || s[0] > '3' {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}
