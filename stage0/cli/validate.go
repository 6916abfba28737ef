package cli

import (
	"regexp"
	"strings"
)

// maxHostname is the kernel's limit (HOST_NAME_MAX) for sethostname(2).
const maxHostname = 64

// checkHostname applies RFC 1123's host name rules that the kernel and
// systemd-nspawn enforce, so that both stage1s get the same answer from
// stage0 instead of one accepting "a/b" and the other failing late.
func checkHostname(h string) error {
	if h == "" {
		return nil
	}
	if len(h) > maxHostname {
		return usageErrorf("--hostname %q: longer than %d characters", h, maxHostname)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return usageErrorf("--hostname %q: empty label (RFC 1123: labels of 1 to 63 characters separated by dots)", h)
		}
		if len(label) > 63 {
			return usageErrorf("--hostname %q: label longer than 63 characters (RFC 1123)", h)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return usageErrorf("--hostname %q: a label starts or ends with a hyphen (RFC 1123)", h)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return usageErrorf("--hostname %q: %q is not allowed (RFC 1123: letters, digits, hyphens and dots)", h, c)
			}
		}
	}
	return nil
}

// envName is appc's rule for environment variable names.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9.-]*$`)

// checkEnv checks one NAME=VALUE of flag: a name appc accepts and a value
// that the stage1s' one-variable-per-line environment files can hold.
func checkEnv(flag, name, value string) error {
	if !envName.MatchString(name) {
		return usageErrorf("%s %q: the name must be letters, digits, '_', '.' or '-', not starting with a digit", flag, name)
	}
	if i := strings.IndexAny(value, "\x00\n\r"); i >= 0 {
		return usageErrorf("%s %s: the value must not contain %q", flag, name, value[i])
	}
	return nil
}
