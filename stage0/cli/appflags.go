package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// appFlags are the flags that follow an image on the command line and
// apply to that image's app.
type appFlags struct {
	Exec, WorkingDir, User, Group, Name, Signature string
	ReadOnlyRootFS                                 bool
	SupplementaryGIDs                              []int
	Mounts, Annotations, UserAnnotations           []string
	UserLabels, Environment                        []string
	Memory, CPU, CPUShares, OOMScoreAdj            string
	CapsRetain, CapsRemove, Seccomp                string
}

// parsedApp is an image argument with its app flags and args.
type parsedApp struct {
	image string
	flags appFlags
	args  []string // nil: the image's own; set by "-- args... ---"
}

// appList is what run's and prepare's command lines build: the images in
// order, each with its app flags. As in rkt, app flags bind to the image
// before them, and pod flags may come anywhere on the line.
type appList struct {
	apps []*parsedApp
	pod  *podFlags
}

// appFlagError is the message of a bad app flag, printed as it is (not
// inside pflag's "invalid argument ... for ... flag:" frame) so that the
// message reads as rkt's did: "--exec must follow an image".
type appFlagError struct{ msg string }

func (e *appFlagError) Error() string { return e.msg }

// appValue is an app flag: Set applies it to the last image given, or,
// for the few flags that may come before every image (--mount and the pod's
// --user-annotation/--user-label), to the pod.
type appValue struct {
	l      *appList
	name   string
	isBool bool
	set    func(a *appFlags, s string) error
	pod    func(p *podFlags, s string)
}

func (v *appValue) String() string { return "" }
func (v *appValue) Type() string {
	if v.isBool {
		return "bool"
	}
	return "string"
}

func (v *appValue) Set(s string) error {
	if len(v.l.apps) == 0 {
		if v.pod != nil {
			v.pod(v.l.pod, s)
			return nil
		}
		return &appFlagError{"--" + v.name + " must follow an image"}
	}
	if err := v.set(&v.l.apps[len(v.l.apps)-1].flags, s); err != nil {
		return &appFlagError{"--" + v.name + ": " + err.Error()}
	}
	return nil
}

// once returns a setter of a string field that refuses a second value for
// the same image, as rkt did.
func once(field func(a *appFlags) *string) func(a *appFlags, s string) error {
	return func(a *appFlags, s string) error {
		p := field(a)
		if *p != "" {
			return errors.New("specified multiple times for the same image")
		}
		*p = s
		return nil
	}
}

func appendTo(field func(a *appFlags) *[]string) func(a *appFlags, s string) error {
	return func(a *appFlags, s string) error {
		p := field(a)
		*p = append(*p, s)
		return nil
	}
}

// flagSet returns the app flags bound to l. deprecated adds rkt's old
// --cap-retain/--cap-remove spellings.
func (l *appList) flagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	add := func(name, usage string, set func(a *appFlags, s string) error) *appValue {
		v := &appValue{l: l, name: name, set: set}
		fs.Var(v, name, usage)
		return v
	}
	add("exec", "override the exec command of the preceding image", once(func(a *appFlags) *string { return &a.Exec }))
	add("working-dir", "override the working directory of the preceding image", once(func(a *appFlags) *string { return &a.WorkingDir }))
	ro := add("readonly-rootfs", "mount the app's rootfs read-only", func(a *appFlags, s string) error {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		a.ReadOnlyRootFS = b
		return nil
	})
	ro.isBool = true
	fs.Lookup("readonly-rootfs").NoOptDefVal = "true"
	add("mount", "mount a volume: volume=NAME,target=PATH (before any image: in every app)",
		appendTo(func(a *appFlags) *[]string { return &a.Mounts })).pod = func(p *podFlags, s string) { p.Mounts = append(p.Mounts, s) }
	add("user", "user to run the preceding image's app as (name, uid or /path)", once(func(a *appFlags) *string { return &a.User }))
	add("group", "group to run the preceding image's app as (name, gid or /path)", once(func(a *appFlags) *string { return &a.Group }))
	add("supplementary-gids", "supplementary group IDs of the preceding image's app (e.g. 1024,2048)", func(a *appFlags, s string) error {
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 31)
			if err != nil {
				return fmt.Errorf("%q is not a group ID", f)
			}
			a.SupplementaryGIDs = append(a.SupplementaryGIDs, int(n))
		}
		return nil
	})
	add("name", "name of the preceding image's app (default: from the image name)", once(func(a *appFlags) *string { return &a.Name }))
	add("annotation", "app annotation NAME=VALUE", appendTo(func(a *appFlags) *[]string { return &a.Annotations }))
	add("user-annotation", "user annotation NAME=VALUE (before any image: the pod's)",
		appendTo(func(a *appFlags) *[]string { return &a.UserAnnotations })).pod = func(p *podFlags, s string) { p.UserAnnotation = append(p.UserAnnotation, s) }
	add("user-label", "user label NAME=VALUE (before any image: the pod's)",
		appendTo(func(a *appFlags) *[]string { return &a.UserLabels })).pod = func(p *podFlags, s string) { p.UserLabel = append(p.UserLabel, s) }
	add("environment", "environment variable NAME=VALUE of the preceding image's app", appendTo(func(a *appFlags) *[]string { return &a.Environment }))
	add("signature", "local signature file of the preceding image", once(func(a *appFlags) *string { return &a.Signature }))
	add("memory", "memory limit of the preceding image's app (e.g. 16Mi, 50M, 1G, or bytes)", once(func(a *appFlags) *string { return &a.Memory }))
	add("cpu", "CPU limit of the preceding image's app (e.g. 500m)", once(func(a *appFlags) *string { return &a.CPU }))
	add("cpu-shares", "CPU time share weight of the preceding image's app (e.g. 2048)", once(func(a *appFlags) *string { return &a.CPUShares }))
	capsRetain := once(func(a *appFlags) *string { return &a.CapsRetain })
	capsRemove := once(func(a *appFlags) *string { return &a.CapsRemove })
	add("caps-retain", "capabilities to retain (e.g. CAP_SYS_ADMIN)", capsRetain)
	add("caps-remove", "capabilities to remove (e.g. CAP_MKNOD)", capsRemove)
	add("seccomp", "seccomp filter: mode=retain|remove[,errno=EPERM],SYSCALL,...", once(func(a *appFlags) *string { return &a.Seccomp }))
	add("oom-score-adj", "OOM score adjustment of the preceding image's app", once(func(a *appFlags) *string { return &a.OOMScoreAdj }))
	add("cap-retain", "capabilities to retain", capsRetain)
	add("cap-remove", "capabilities to remove", capsRemove)
	_ = fs.MarkDeprecated("cap-retain", "use --caps-retain instead")
	_ = fs.MarkDeprecated("cap-remove", "use --caps-remove instead")
	return fs
}

// parseRunLine parses run's or prepare's command line as rkt did: pod
// flags anywhere, each image followed by its app flags and optional
// "-- args... [---]". It returns nil flags after printing the help.
func parseRunLine(g *globals, name string, withRuntime bool, args []string) (*podFlags, []parsedApp, error) {
	pf := &podFlags{}
	l := &appList{pod: pf}
	fs := pf.flagSet(g, name, withRuntime)
	afs := l.flagSet(name)
	fs.AddFlagSet(afs)
	fs.SetInterspersed(false)
	fs.Usage = func() {} // errors are one line; --help prints the flags below
	fs.SetOutput(g.stderr)
	inArgs, appsAtArgs := false, 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "":
			continue
		case inArgs:
			if a == "---" {
				inArgs = false
				continue
			}
			last := l.apps[len(l.apps)-1]
			last.args = append(last.args, a)
		case a == "--":
			if len(l.apps) == 0 {
				return nil, nil, usageErrorf("an image is required before any app arguments")
			}
			if appsAtArgs == len(l.apps) {
				return nil, nil, usageErrorf("only one set of app arguments allowed per image")
			}
			appsAtArgs, inArgs = len(l.apps), true
			l.apps[len(l.apps)-1].args = []string{}
		case a == "---":
			// An argument list terminator with no list open: rkt ignored it.
		default:
			if err := fs.Parse(args[i:]); err != nil {
				if errors.Is(err, pflag.ErrHelp) {
					printRunHelp(g, name, fs, afs)
					return nil, nil, nil
				}
				var ae *appFlagError
				if errors.As(err, &ae) {
					return nil, nil, usageError{ae}
				}
				return nil, nil, usageError{err}
			}
			n := len(args[i:]) - fs.NArg()
			if n == 0 {
				l.apps = append(l.apps, &parsedApp{image: a})
				continue
			}
			// Parse consumes a "--" that ends the flags: it opens the
			// preceding image's arguments, so give it back.
			if args[i+n-1] == "--" {
				n--
			}
			i += n - 1
		}
	}
	if err := g.finish(); err != nil {
		return nil, nil, err
	}
	if err := pf.applyDeprecated(); err != nil {
		return nil, nil, err
	}
	apps := make([]parsedApp, len(l.apps))
	for i, a := range l.apps {
		apps[i] = *a
	}
	return pf, apps, nil
}

func printRunHelp(g *globals, name string, fs, afs *pflag.FlagSet) {
	pod := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.VisitAll(func(f *pflag.Flag) {
		if afs.Lookup(f.Name) == nil {
			pod.AddFlag(f)
		}
	})
	fmt.Fprintf(g.stdout, "Usage: rkt %s [flags] IMAGE [image flags] [-- image-args... [---]] [IMAGE [image flags]...]\n\n"+
		"Pod flags (anywhere on the line):\n%s\n"+
		"Image flags (after an image, for that image's app):\n%s", name, pod.FlagUsages(), afs.FlagUsages())
}
