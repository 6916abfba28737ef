// Package cli implements rkt's commands: one file per command, each a short
// function returning an error. Exit codes are the constants in exit.go; the
// only os.Exit is in stage0/cmd/rkt.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rktng/rkt/common/config"
)

// globals are the flags every command accepts, before or after its name.
type globals struct {
	Debug              bool
	Dir                string
	SystemConfig       string
	LocalConfig        string
	UserConfig         string
	InsecureOptions    string
	TrustKeysFromHTTPS bool
	CPUProfile         string
	MemProfile         string

	insecure insecureOptions
	cfg      *config.Config
	// cpuProfile is the open --cpuprofile file while profiling.
	cpuProfile *os.File
	start      time.Time
	// fetchOnly: images are fetched to be run later; their trees are
	// rendered when a pod first needs them.
	fetchOnly bool
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

const defaultDataDir = "/var/lib/rkt"

// insecureOptions is the parsed --insecure-options list.
type insecureOptions struct {
	Image, TLS, HTTP, PubKey, Capabilities, Paths, Seccomp bool
}

func parseInsecureOptions(s string) (insecureOptions, error) {
	var o insecureOptions
	for _, w := range strings.Split(s, ",") {
		switch strings.TrimSpace(w) {
		case "", "none", "ondisk":
		case "image":
			o.Image = true
		case "tls":
			o.TLS = true
		case "http":
			o.HTTP = true
		case "pubkey":
			o.PubKey = true
		case "capabilities":
			o.Capabilities = true
		case "paths":
			o.Paths = true
		case "seccomp":
			o.Seccomp = true
		case "all-fetch":
			o.Image, o.TLS, o.HTTP, o.PubKey = true, true, true, true
		case "all-run":
			o.Capabilities, o.Paths, o.Seccomp = true, true, true
		case "all":
			o = insecureOptions{true, true, true, true, true, true, true}
		default:
			return o, usageErrorf("--insecure-options: unknown option %q (want none,image,tls,ondisk,http,pubkey,capabilities,paths,seccomp,all-fetch,all-run,all)", w)
		}
	}
	return o, nil
}

func defaultUserConfig() string {
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "rkt")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".config", "rkt")
	}
	return ""
}

// addGlobalFlags registers the global flags on fs, bound to g.
func (g *globals) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&g.Debug, "debug", false, "print out more debug information to stderr")
	fs.StringVar(&g.Dir, "dir", "", "rkt data directory (default: paths.d's data, else /var/lib/rkt)")
	fs.StringVar(&g.SystemConfig, "system-config", "/usr/lib/rkt", "system configuration directory")
	fs.StringVar(&g.LocalConfig, "local-config", "/etc/rkt", "local configuration directory")
	fs.StringVar(&g.UserConfig, "user-config", defaultUserConfig(), "user configuration directory")
	fs.StringVar(&g.InsecureOptions, "insecure-options", "none", "comma-separated list of security features to disable: none,image,tls,ondisk,http,pubkey,capabilities,paths,seccomp,all-fetch,all-run,all")
	fs.BoolVar(&g.TrustKeysFromHTTPS, "trust-keys-from-https", false, "automatically trust gpg keys fetched from https")
	fs.StringVar(&g.CPUProfile, "cpuprofile", "", "write a CPU profile to the file")
	fs.StringVar(&g.MemProfile, "memprofile", "", "write a memory profile to the file")
	_ = fs.MarkHidden("cpuprofile")
	_ = fs.MarkHidden("memprofile")
}

// finish validates the globals once all flags are parsed.
func (g *globals) finish() error {
	g.cfg = nil
	o, err := parseInsecureOptions(g.InsecureOptions)
	if err != nil {
		return err
	}
	g.insecure = o
	if g.Dir == "" {
		g.Dir = defaultDataDir
		if cfg, err := g.config(); err == nil && cfg.Paths.Data != "" {
			g.Dir = cfg.Paths.Data
		}
	}
	abs, err := filepath.Abs(g.Dir)
	if err != nil {
		return fmt.Errorf("resolving --dir %q: %w", g.Dir, err)
	}
	g.Dir = abs
	return g.startFlagProfile()
}

func (g *globals) debugf(format string, args ...any) {
	if g.Debug {
		fmt.Fprintf(g.stderr, "rkt: [%6.1fms] "+format+"\n", append([]any{float64(time.Since(g.start).Microseconds()) / 1000}, args...)...)
	}
}

func (g *globals) warnf(format string, args ...any) {
	fmt.Fprintf(g.stderr, "rkt: warning: "+format+"\n", args...)
}

// Main runs rkt with args (without the program name) and returns the exit
// status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr, start: time.Now()}
	startProfile(stderr)
	defer stopProfile()
	root := newRootCommand(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if h, ok := asHandOver(err); ok {
		err = handOver(g, h, args)
	}
	if perr := g.stopFlagProfile(); err == nil {
		err = perr
	}
	if err == nil {
		return ExitOK
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	printError(g, root, args, err)
	return ExitFailure
}

func newRootCommand(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "rkt",
		Short:         "rkt, the application container runner",
		Long:          "A CLI for running app containers on Linux.\n\nTo get the help on any specific command, run \"rkt help command\".",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.DisableFlagParsing {
				return nil // run and prepare parse the globals themselves
			}
			return g.finish()
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	g.addFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	for _, c := range []*cobra.Command{
		newVersionCommand(g), newConfigCommand(g),
		newFetchCommand(g), newImageCommand(g),
		newRunCommand(g), newPrepareCommand(g), newRunPreparedCommand(g),
		newListCommand(g), newStatusCommand(g), newStopCommand(g),
		newRmCommand(g), newGCCommand(g), newCatManifestCommand(g),
		newExportCommand(g), newEnterCommand(g),
	} {
		root.AddCommand(c)
	}
	for _, c := range extraCommands {
		root.AddCommand(c(g))
	}
	return root
}

// extraCommands lets commands in other files of this package (trust,
// metadata-service...) register themselves without touching this list.
var extraCommands []func(*globals) *cobra.Command

// printError prints err's message on one line; under --debug it adds the
// chain of wrapped errors, outermost first.
func printError(g *globals, root *cobra.Command, args []string, err error) {
	name := "rkt"
	if c, _, ferr := root.Find(args); ferr == nil && c != root {
		name = c.CommandPath()
	}
	fmt.Fprintf(g.stderr, "%s: %s\n", name, oneLine(suggestions(err.Error())))
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(g.stderr, "run \"rkt help\" for usage\n")
	}
	if !g.Debug {
		return
	}
	for e, depth := err, 0; e != nil; depth++ {
		fmt.Fprintf(g.stderr, "%s└─ %T: %v\n", strings.Repeat("  ", depth), e, e)
		next := errors.Unwrap(e)
		if next == nil {
			if m, ok := e.(interface{ Unwrap() []error }); ok {
				for _, sub := range m.Unwrap() {
					fmt.Fprintf(g.stderr, "%s   ├─ %T: %v\n", strings.Repeat("  ", depth), sub, sub)
				}
			}
		}
		e = next
	}
}

// oneLine joins a message that some library wrote over several lines (a
// discovery error listing the URLs it tried, errors.Join) into one: scripts
// and clients read rkt's error as the one line on stderr.
func oneLine(msg string) string {
	lines := strings.Split(strings.TrimRight(msg, "\n"), "\n")
	var b strings.Builder
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if i > 0 && b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(l)
	}
	return b.String()
}

// suggestions folds cobra's "Did you mean this?" block into the line:
// `unknown command "lsit" for "rkt" (did you mean list?)`.
func suggestions(msg string) string {
	before, after, ok := strings.Cut(msg, "\n\nDid you mean this?\n")
	if !ok {
		return msg
	}
	return before + " (did you mean " + strings.Join(strings.Fields(after), " or ") + "?)"
}
