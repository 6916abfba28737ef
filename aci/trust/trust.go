package trust

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/discovery"
	"github.com/rktng/rkt/aci/httpget"
)

// ErrNotAccepted is returned when the user declined every key offered.
var ErrNotAccepted = errors.New("no key accepted")

// TrustOptions are `rkt trust`'s flags and what it needs around them.
type TrustOptions struct {
	// Prefix the keys are trusted for (--prefix); exclusive with Root.
	Prefix string
	// Root trusts the keys for every image (--root).
	Root bool
	// Keys are key files or http(s) URLs. Empty means discover them with
	// ac-discovery-pubkeys on Prefix.
	Keys []string
	// SkipFingerprintReview trusts without asking (--skip-fingerprint-review).
	SkipFingerprintReview bool
	// TrustKeysFromHTTPS accepts without asking keys fetched over verified
	// HTTPS (--trust-keys-from-https).
	TrustKeysFromHTTPS bool
	// InsecureAllowHTTP permits http:// key URLs and discovery over plain
	// HTTP (--insecure-allow-http).
	InsecureAllowHTTP bool
	// InsecureSkipTLSVerify means HTTP already skips TLS verification; keys
	// fetched so are never accepted without review.
	InsecureSkipTLSVerify bool
	// HTTP fetches key URLs and discovery pages; nil means
	// http.DefaultClient.
	HTTP *http.Client
	// Header gives credentials for a URL's host (sent over https only).
	Header func(u *url.URL) http.Header
	// Out receives the key review and what was done; In answers the
	// fingerprint question. With In nil, keys that need review are refused.
	Out io.Writer
	In  io.Reader
}

// Added is a key stored by Trust.
type Added struct {
	Fingerprint string
	Prefix      string // "" for root
	Path        string
	Location    string // file or URL it came from
}

// Trust fetches keys, shows their fingerprints and identities, asks whether
// to trust each (unless told not to) and stores the accepted ones in the
// local keystore under the prefix, or as root keys. It returns the keys
// stored; declining every key is ErrNotAccepted.
func (ks *Keystore) Trust(ctx context.Context, opts TrustOptions) ([]Added, error) {
	if ks.LocalDir == "" {
		return nil, errors.New("trusting keys: no local configuration directory to store them in")
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	prefix, what, err := trustedFor(opts)
	if err != nil {
		return nil, err
	}
	locations := opts.Keys
	if len(locations) == 0 {
		dc := &discovery.Client{HTTP: opts.HTTP, Header: opts.Header, InsecureHTTP: opts.InsecureAllowHTTP}
		res, err := dc.DiscoverPublicKeys(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("trusting keys for %s: %w", what, err)
		}
		locations = res.PublicKeys
	}
	var added []Added
	reader := bufio.NewReader(orEmpty(opts.In))
	for _, loc := range locations {
		a, err := ks.trustKey(ctx, loc, opts, prefix, what, reader)
		added = append(added, a...)
		if err != nil {
			return added, fmt.Errorf("trusting key %s for %s: %w", loc, what, err)
		}
	}
	if len(added) == 0 {
		return nil, fmt.Errorf("trusting keys for %s: %w", what, ErrNotAccepted)
	}
	return added, nil
}

// trustedFor checks --root and --prefix and returns the prefix ("" for
// root) and how messages name it.
func trustedFor(opts TrustOptions) (prefix, what string, err error) {
	switch {
	case opts.Root && opts.Prefix != "":
		return "", "", errors.New("trusting keys: --root and --prefix are exclusive")
	case opts.Root:
		if len(opts.Keys) == 0 {
			return "", "", errors.New("trusting keys: --root needs key files or URLs")
		}
		return "", "all images (root key)", nil
	case opts.Prefix == "":
		return "", "", errors.New("trusting keys: give --prefix (or --root)")
	}
	id, err := types.NewACIdentifier(opts.Prefix)
	if err != nil {
		return "", "", fmt.Errorf("trusting keys for prefix %q: %w", opts.Prefix, err)
	}
	return id.String(), fmt.Sprintf("prefix %q", id.String()), nil
}

// trustKey fetches the keys at loc, has them reviewed unless the options
// accept them, and stores the accepted ones.
func (ks *Keystore) trustKey(ctx context.Context, loc string, opts TrustOptions, prefix, what string, reader *bufio.Reader) ([]Added, error) {
	out := opts.Out
	raw, viaHTTPS, err := fetchKey(ctx, loc, opts)
	if err != nil {
		return nil, err
	}
	el, err := ReadKeys(raw)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "Prefix: %q\nKey: %q\n", prefix, loc)
	for _, e := range el {
		showKey(out, e)
	}
	accept := opts.SkipFingerprintReview || (opts.TrustKeysFromHTTPS && viaHTTPS && !opts.InsecureSkipTLSVerify)
	how := "without fingerprint review"
	if !accept {
		if opts.In == nil {
			return nil, errors.New("the fingerprint needs review and there is no input to ask on (use --skip-fingerprint-review to trust it anyway)")
		}
		ok, err := ask(out, reader)
		if err != nil {
			return nil, err
		}
		if !ok {
			fmt.Fprintf(out, "Not trusting %q\n", loc)
			return nil, nil
		}
		how = "after fingerprint review"
	}
	dir := ks.prefixPath(ks.LocalDir, prefix)
	if opts.Root {
		dir = ks.rootPath(ks.LocalDir)
	}
	fmt.Fprintf(out, "Trusting %q for %s %s.\n", loc, what, how)
	var added []Added
	for _, e := range el {
		path, err := writeKey(dir, e)
		if err != nil {
			return added, err
		}
		if opts.Root {
			fmt.Fprintf(out, "Added root key at %q\n", path)
		} else {
			fmt.Fprintf(out, "Added key for prefix %q at %q\n", prefix, path)
		}
		added = append(added, Added{Fingerprint: Fingerprint(e), Prefix: prefix, Path: path, Location: loc})
	}
	return added, nil
}

func orEmpty(r io.Reader) io.Reader {
	if r == nil {
		return strings.NewReader("")
	}
	return r
}

func showKey(out io.Writer, e *openpgp.Entity) {
	fmt.Fprintf(out, "GPG key fingerprint is: %s\n", FormatFingerprint(Fingerprint(e)))
	for _, sk := range e.Subkeys {
		fmt.Fprintf(out, "    Subkey fingerprint: %s\n", FormatFingerprint(fmt.Sprintf("%x", sk.PublicKey.Fingerprint)))
	}
	for _, id := range Identities(e) {
		fmt.Fprintf(out, "\t%s\n", id)
	}
}

// ask asks until it gets an answer; the default (an empty line) is no.
func ask(out io.Writer, in *bufio.Reader) (bool, error) {
	for {
		fmt.Fprint(out, "Are you sure you want to trust this key (yes/no)? [y/N] ")
		line, err := in.ReadString('\n')
		ans := strings.ToLower(strings.TrimSpace(line))
		switch ans {
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		case "":
			if err == nil {
				return false, nil
			}
		}
		if err != nil {
			if err == io.EOF {
				return false, errors.New("no answer to the fingerprint question (input closed); use --skip-fingerprint-review to trust without review")
			}
			return false, fmt.Errorf("reading answer: %w", err)
		}
		fmt.Fprintln(out, "Please answer yes or no.")
	}
}

// maxKeySize bounds a downloaded key file.
const maxKeySize = 1 << 20

// fetchKey reads a key file or URL; viaHTTPS tells whether it came over
// HTTPS.
func fetchKey(ctx context.Context, loc string, opts TrustOptions) (raw []byte, viaHTTPS bool, err error) {
	u, err := url.Parse(loc)
	if err != nil || u.Scheme == "" || u.Scheme == "file" {
		path := loc
		if err == nil && u.Scheme == "file" {
			path = u.Path
		}
		raw, err := os.ReadFile(path)
		return raw, false, err
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !opts.InsecureAllowHTTP {
			return nil, false, errors.New("refusing a key over plain HTTP (use --insecure-allow-http)")
		}
	default:
		return nil, false, fmt.Errorf("unsupported URL scheme %q (key files, http and https URLs are)", u.Scheme)
	}
	resp, err := httpget.Get(ctx, u, httpget.Options{Client: opts.HTTP, Header: opts.Header, Limit: maxKeySize})
	if err != nil {
		return nil, false, fmt.Errorf("GET %s: %w", loc, err)
	}
	if resp.Status != http.StatusOK {
		return nil, false, fmt.Errorf("GET %s: %s", loc, resp.StatusText)
	}
	// A redirect may have left HTTPS.
	return resp.Body, resp.URL.Scheme == "https", nil
}
