package cli

import "github.com/spf13/pflag"

// storeFlags are rkt's pre-pull-policy flags, still accepted by run,
// prepare and fetch (pflag prints rkt's deprecation notice on stderr).
type storeFlags struct {
	StoreOnly, NoStore bool
}

func addDeprecatedStoreFlags(fs *pflag.FlagSet, s *storeFlags) {
	fs.BoolVar(&s.StoreOnly, "store-only", false, "use only images in the store")
	fs.BoolVar(&s.NoStore, "no-store", false, "fetch images ignoring the store")
	_ = fs.MarkDeprecated("store-only", "please use --pull-policy=never")
	_ = fs.MarkDeprecated("no-store", "please use --pull-policy=update")
}

// pullPolicy returns the pull policy these flags ask for instead of
// policy, or an error when both are given.
func (s storeFlags) pullPolicy(policy string) (string, error) {
	switch {
	case s.StoreOnly && s.NoStore:
		return "", usageErrorf("both --store-only and --no-store specified")
	case s.StoreOnly:
		return "never", nil
	case s.NoStore:
		return "update", nil
	}
	return policy, nil
}

// applyDeprecated folds the deprecated flags into the current ones.
func (p *podFlags) applyDeprecated() error {
	pp, err := p.storeFlags.pullPolicy(p.PullPolicy)
	p.PullPolicy = pp
	return err
}
