package archive

import (
	"archive/tar"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrTooLarge: the image exceeds a size limit (Limits) or the free space.
var ErrTooLarge = errors.New("image too large")

// Limits of what Linux can hold, checked at fetch so that an image that
// could never be rendered is refused before it is stored.
const (
	MaxNameLen      = 4095    // PATH_MAX less the NUL: a whole entry name
	MaxComponentLen = 255     // NAME_MAX: one path component
	MaxSymlinkLen   = 4095    // symlink(2) refuses longer targets
	MaxXattrName    = 255     // XATTR_NAME_MAX
	MaxXattrValue   = 1 << 16 // XATTR_SIZE_MAX
	// MaxID is the largest uid or gid: IDs are 32 bits and 2^32-1 means
	// "no change" to chown(2).
	MaxID = 1<<32 - 2
)

const xattrPrefix = "SCHILY.xattr."

var xattrNamespaces = []string{"user.", "trusted.", "security.", "system."}

// checkName refuses names the kernel cannot create.
func checkName(raw, name string) error {
	if len(name) > MaxNameLen {
		return unsafeEntry(raw, fmt.Sprintf("name of %d bytes, longer than %d", len(name), MaxNameLen))
	}
	for _, c := range strings.Split(name, "/") {
		if len(c) > MaxComponentLen {
			return unsafeEntry(raw, fmt.Sprintf("path component of %d bytes, longer than %d", len(c), MaxComponentLen))
		}
	}
	if strings.IndexByte(name, 0) >= 0 {
		return unsafeEntry(raw, "NUL byte in name")
	}
	return nil
}

// checkHeader checks what of an entry's header the extractor hands to the
// kernel as is: owner, symlink target, extended attributes.
func checkHeader(hdr *tar.Header) error {
	for _, id := range []struct {
		what string
		v    int
	}{{"uid", hdr.Uid}, {"gid", hdr.Gid}} {
		if id.v < 0 || id.v > MaxID {
			return unsafeEntry(hdr.Name, fmt.Sprintf("%s %d out of range (0-%d)", id.what, id.v, MaxID))
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		if hdr.Linkname == "" {
			return unsafeEntry(hdr.Name, "empty symlink target")
		}
		if len(hdr.Linkname) > MaxSymlinkLen {
			return unsafeEntry(hdr.Name, fmt.Sprintf("symlink target of %d bytes, longer than %d", len(hdr.Linkname), MaxSymlinkLen))
		}
		if strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return unsafeEntry(hdr.Name, "NUL byte in symlink target")
		}
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, xattrPrefix)
		if !ok {
			continue
		}
		if err := checkXattr(attr, v); err != nil {
			return unsafeEntry(hdr.Name, err.Error())
		}
	}
	return nil
}

func checkXattr(name, value string) error {
	q := strconv.QuoteToASCII(name)
	if len(q) > 80 {
		q = q[:60] + "..."
	}
	if len(name) > MaxXattrName || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("xattr name %s: longer than %d bytes or with a NUL", q, MaxXattrName)
	}
	known := false
	for _, ns := range xattrNamespaces {
		if strings.HasPrefix(name, ns) && len(name) > len(ns) {
			known = true
		}
	}
	if !known {
		return fmt.Errorf("xattr %s: not in the user, trusted, security or system namespace", q)
	}
	if len(value) > MaxXattrValue {
		return fmt.Errorf("xattr %s: value of %d bytes, longer than %d", q, len(value), MaxXattrValue)
	}
	if name == "security.capability" {
		if err := checkFileCaps([]byte(value)); err != nil {
			return fmt.Errorf("xattr security.capability: %w", err)
		}
	}
	return nil
}

// checkFileCaps checks a vfs_cap_data value (linux/capability.h): its
// revision, its size for that revision and its flags.
func checkFileCaps(v []byte) error {
	if len(v) < 4 {
		return fmt.Errorf("%d bytes, too short for a capability set", len(v))
	}
	magic := binary.LittleEndian.Uint32(v)
	const (
		revMask   = 0xFF000000
		effective = 0x000001
	)
	want := map[uint32]int{0x01000000: 12, 0x02000000: 20, 0x03000000: 24}[magic&revMask]
	switch {
	case want == 0:
		return fmt.Errorf("unknown revision %#x", magic&revMask)
	case len(v) != want:
		return fmt.Errorf("%d bytes, revision %d wants %d", len(v), magic>>24, want)
	case magic&^(revMask|effective) != 0:
		return fmt.Errorf("unknown flags %#x", magic&^revMask)
	}
	return nil
}
