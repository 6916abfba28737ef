package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rktng/rkt/aci/fetch"
	"github.com/rktng/rkt/aci/trust"
)

func init() {
	extraCommands = append(extraCommands, newTrustCommand)
}

type trustFlags struct {
	Prefix                string
	Root                  bool
	SkipFingerprintReview bool
	InsecureAllowHTTP     bool
}

func newTrustCommand(g *globals) *cobra.Command {
	var f trustFlags
	cmd := &cobra.Command{
		Use:   "trust [--prefix=PREFIX] [--root] [--skip-fingerprint-review] [PUBKEY ...]",
		Short: "Trust a key for image verification",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrust(g, f, args)
		},
	}
	cmd.Flags().StringVar(&f.Prefix, "prefix", "", "prefix to limit trust to")
	cmd.Flags().BoolVar(&f.Root, "root", false, "add root key from filesystem without a prefix")
	cmd.Flags().BoolVar(&f.SkipFingerprintReview, "skip-fingerprint-review", false, "accept key without fingerprint confirmation")
	cmd.Flags().BoolVar(&f.InsecureAllowHTTP, "insecure-allow-http", false, "allow HTTP use for key discovery and/or retrieval")
	return cmd
}

// runTrust stores keys in the local configuration's trust store, after the
// user has reviewed their fingerprints (answered on a terminal only).
func runTrust(g *globals, f trustFlags, keys []string) error {
	if f.Prefix == "" && !f.Root {
		return usageErrorf("--prefix or --root is required")
	}
	if f.Prefix != "" && f.Root {
		return usageErrorf("--prefix and --root cannot be used together")
	}
	if f.Root && len(keys) == 0 {
		return usageErrorf("--root needs key files or URLs")
	}
	cfg, err := g.config()
	if err != nil {
		return err
	}
	client, err := fetch.NewHTTPClient(fetch.ClientOptions{InsecureTLS: g.insecure.TLS, AllowHTTP: f.InsecureAllowHTTP})
	if err != nil {
		return err
	}
	var in io.Reader
	if file, ok := g.stdin.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
		in = file
	}
	headers := fetch.AuthHeaders(cfg)
	added, err := g.keystore().Trust(context.Background(), trust.TrustOptions{
		Prefix:                f.Prefix,
		Root:                  f.Root,
		Keys:                  keys,
		SkipFingerprintReview: f.SkipFingerprintReview,
		TrustKeysFromHTTPS:    g.TrustKeysFromHTTPS,
		InsecureAllowHTTP:     f.InsecureAllowHTTP,
		InsecureSkipTLSVerify: g.insecure.TLS,
		HTTP:                  client,
		Header:                func(u *url.URL) http.Header { return headers(u) },
		Out:                   g.stderr,
		In:                    in,
	})
	for _, a := range added {
		fmt.Fprintf(g.stderr, "Added key for prefix %q at %q\n", a.Prefix, a.Path)
	}
	return err
}
