package testutil

import (
	"regexp"
	"strings"
)

// logPrefix is what the host stage1 puts before each line an app writes,
// as rkt's systemd stage1 did: journald forwards the app's output to the
// pod's console as "[ MONOTONIC] IDENTIFIER[PID]: ".
var logPrefix = regexp.MustCompile(`^\[ *[0-9]+\.[0-9]+\] [^ \[\]:]+(\[[0-9]+\])?: `)

// StripLogPrefixes removes the journald console prefix from every line of
// s that has one, leaving the app's own text: the suite matches what the
// app printed whatever stage1 forwarded it.
func StripLogPrefixes(s string) string {
	if !strings.Contains(s, "] ") {
		return s
	}
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if loc := logPrefix.FindStringIndex(l); loc != nil {
			lines[i] = l[loc[1]:]
		}
	}
	return strings.Join(lines, "")
}

// appOutput is what the suite matches in stdout: the app's lines without
// the stage1's decoration.
func (a *Artifacts) appOutput(s string) string {
	if a.Stage1.Flavor == "host" {
		return StripLogPrefixes(s)
	}
	return s
}

// Output is everything rkt and the pod printed, stdout then stderr: the
// host stage1 forwards the apps' stderr to the pod's console, which is
// rkt's stdout, so an app's error message may be on either.
func (r Result) Output() string { return r.Stdout + r.Stderr }
