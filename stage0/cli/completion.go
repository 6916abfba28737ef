package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// completionShells are the shells `rkt completion` writes a script for.
var completionShells = map[string]func(root *cobra.Command, w io.Writer) error{
	"bash": func(root *cobra.Command, w io.Writer) error { return root.GenBashCompletionV2(w, true) },
	"zsh":  func(root *cobra.Command, w io.Writer) error { return root.GenZshCompletion(w) },
	"fish": func(root *cobra.Command, w io.Writer) error { return root.GenFishCompletion(w, true) },
}

func init() {
	extraCommands = append(extraCommands, newCompletionCommand)
}

// newCompletionCommand is rkt 1.30's `rkt completion SHELL`; cobra writes
// the scripts (its default completion command is disabled in root.go so
// that this one, with rkt's name and help, is the only one).
func newCompletionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "completion SHELL",
		Short: "Output shell completion code for the specified shell (bash, zsh or fish)",
		Long: `Output shell completion code for the specified shell.

To load it in the current bash shell:

    source <(rkt completion bash)

Packages install the scripts where bash-completion, zsh and fish find them.`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCompletion(g, cmd.Root(), args[0])
		},
	}
}

func runCompletion(g *globals, root *cobra.Command, shell string) error {
	gen, ok := completionShells[shell]
	if !ok {
		return usageErrorf("unsupported shell %q (want bash, zsh or fish)", shell)
	}
	if err := gen(root, g.stdout); err != nil {
		return fmt.Errorf("writing %s completion: %w", shell, err)
	}
	return nil
}

// DocCommand is rkt's command tree for generating documentation (man
// pages, in dist/genman): run and prepare parse their own flags, so the
// flags they take are added to them here for the pages to list.
func DocCommand() *cobra.Command {
	g := &globals{}
	root := newRootCommand(g)
	root.DisableAutoGenTag = true
	persistent := root.PersistentFlags()
	// The default depends on who runs rkt, not on who built the pages.
	persistent.Lookup("user-config").DefValue = "$XDG_CONFIG_HOME/rkt, else ~/.config/rkt"
	for _, c := range root.Commands() {
		var withRuntime bool
		switch c.Name() {
		case "run":
			withRuntime = true
		case "prepare":
		default:
			continue
		}
		fs := (&podFlags{}).flagSet(g, c.Name(), withRuntime)
		fs.VisitAll(func(f *pflag.Flag) {
			if persistent.Lookup(f.Name) == nil {
				c.Flags().AddFlag(f)
			}
		})
	}
	return root
}
