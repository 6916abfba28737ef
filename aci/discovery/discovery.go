// Package discovery turns an appc image name (example.com/app:1.0 with
// labels) into the URLs of its image, signature and signing keys by appc
// meta discovery: GET https://{name}?ac-discovery=1, read the ac-discovery
// and ac-discovery-pubkeys meta tags, render their templates, and walk up
// the name's path until a page answers.
//
// It keeps github.com/appc/spec/discovery's App type and name parsing, but
// does its own HTTP so that the caller's client (CA pool, timeouts,
// redirects) and context are used, and so that a failure lists every URL
// tried and what came back, where the appc package only said "discovery
// failed".
package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	appcdisc "github.com/appc/spec/discovery"
	"github.com/appc/spec/schema/types"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/rktng/rkt/aci/httpget"
)

// App is an image name with labels, as appc's discovery package has it.
type App = appcdisc.App

// ParseApp parses a command-line image name: "example.com/app",
// "example.com/app:1.0", "example.com/app:1.0,os=linux,channel=beta".
func ParseApp(s string) (*App, error) {
	a, err := appcdisc.NewAppFromString(s)
	if err != nil {
		return nil, fmt.Errorf("parsing image name %q: %w", s, err)
	}
	return a, nil
}

// AppFromDependency is the name and labels a dependency asks for.
func AppFromDependency(dep types.Dependency) (*App, error) {
	a, err := appcdisc.NewApp(dep.ImageName.String(), dep.Labels.ToMap())
	if err != nil {
		return nil, fmt.Errorf("dependency %q: %w", dep.ImageName, err)
	}
	return a, nil
}

// ErrNotFound is wrapped by *Error: no page gave what was looked for.
var ErrNotFound = errors.New("discovery found nothing")

// Endpoint is where one image and its signature are.
type Endpoint struct {
	ACI string
	ASC string
}

// Result is what a page gave.
type Result struct {
	// Page is the discovery URL that answered.
	Page       string
	Endpoints  []Endpoint
	PublicKeys []string
	// Attempts lists the pages tried before (they gave nothing usable).
	Attempts []Attempt
}

// Attempt is one discovery URL tried and what came back.
type Attempt struct {
	URL    string
	Result string
}

// Error is a failed discovery, listing every URL tried.
type Error struct {
	Name     string
	Meta     string // "ac-discovery" or "ac-discovery-pubkeys"
	Attempts []Attempt
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "discovery of %s (meta %s) found nothing; tried:", e.Name, e.Meta)
	for _, a := range e.Attempts {
		fmt.Fprintf(&b, "\n  %s: %s", a.URL, a.Result)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return ErrNotFound }

// Client discovers with an HTTP client of the caller's making.
type Client struct {
	HTTP *http.Client
	// Header returns the headers (credentials) for a URL's host; they are
	// sent over https only.
	Header func(u *url.URL) http.Header
	// InsecureHTTP tries http:// when https:// gives nothing.
	InsecureHTTP bool
}

// maxPage bounds how much of a discovery page is read: the meta tags are in
// its head.
const maxPage = 1 << 20

const (
	metaDiscovery = "ac-discovery"
	metaPubkeys   = "ac-discovery-pubkeys"
)

// DiscoverImage finds the image and signature URLs of app. The version
// label defaults to "latest"; os and arch are the caller's to set.
func (c *Client) DiscoverImage(ctx context.Context, app *App) (*Result, error) {
	return c.walk(ctx, app, metaDiscovery)
}

// DiscoverPublicKeys finds the URLs of the keys that sign images under
// prefix.
func (c *Client) DiscoverPublicKeys(ctx context.Context, prefix string) (*Result, error) {
	app, err := appcdisc.NewApp(prefix, nil)
	if err != nil {
		return nil, fmt.Errorf("discovering keys for %q: %w", prefix, err)
	}
	return c.walk(ctx, app, metaPubkeys)
}

func (c *Client) walk(ctx context.Context, app *App, want string) (*Result, error) {
	name := app.Name.String()
	vars := templateVars(app)
	var attempts []Attempt
	parts := strings.Split(name, "/")
	for end := len(parts); end > 0; end-- {
		prefix := strings.Join(parts[:end], "/")
		schemes := []string{"https"}
		if c.InsecureHTTP {
			schemes = append(schemes, "http")
		}
		for _, scheme := range schemes {
			page := scheme + "://" + prefix + "?ac-discovery=1"
			metas, err := c.getMeta(ctx, page)
			if err != nil {
				attempts = append(attempts, Attempt{page, err.Error()})
				if ctx.Err() != nil {
					return nil, &Error{name, want, attempts}
				}
				continue
			}
			res := &Result{Page: page}
			var notes []string
			for _, m := range metas {
				if m.name != want || !strings.HasPrefix(name, m.prefix) {
					continue
				}
				switch want {
				case metaPubkeys:
					res.PublicKeys = append(res.PublicKeys, m.uri)
				case metaDiscovery:
					ep, missing := renderEndpoint(m.uri, vars)
					if missing != "" {
						notes = append(notes, fmt.Sprintf("template %q needs %s, which %s does not give", m.uri, missing, app))
						continue
					}
					res.Endpoints = append(res.Endpoints, ep)
				}
			}
			if len(res.Endpoints) > 0 || len(res.PublicKeys) > 0 {
				sortHTTPSFirst(res.Endpoints)
				res.Attempts = attempts
				return res, nil
			}
			attempts = append(attempts, Attempt{page, describeMiss(metas, want, name, notes)})
		}
	}
	return nil, &Error{name, want, attempts}
}

// describeMiss says why a page that loaded gave nothing.
func describeMiss(metas []meta, want, name string, notes []string) string {
	if len(notes) > 0 {
		return strings.Join(notes, "; ")
	}
	var same []string
	for _, m := range metas {
		if m.name == want {
			same = append(same, m.prefix)
		}
	}
	if len(same) == 0 {
		return fmt.Sprintf(`page has no <meta name=%q> tag (%d ac- meta tags)`, want, len(metas))
	}
	return fmt.Sprintf(`page's <meta name=%q> tags are for prefixes %s, none of which is a prefix of %s`, want, strings.Join(same, ", "), name)
}

// sortHTTPSFirst keeps the page's order otherwise.
func sortHTTPSFirst(eps []Endpoint) {
	sort.SliceStable(eps, func(i, j int) bool {
		return strings.HasPrefix(eps[i].ACI, "https://") && !strings.HasPrefix(eps[j].ACI, "https://")
	})
}

type meta struct {
	name, prefix, uri string
}

func (c *Client) getMeta(ctx context.Context, page string) ([]meta, error) {
	u, err := url.Parse(page)
	if err != nil {
		return nil, err
	}
	resp, err := httpget.Get(ctx, u, httpget.Options{Client: c.HTTP, Header: c.Header, Limit: maxPage, Truncate: true})
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		msg := resp.StatusText
		if resp.Status == http.StatusUnauthorized {
			msg += " (configure credentials for " + u.Host + " in auth.d)"
		}
		return nil, errors.New(msg)
	}
	return parseMeta(bytes.NewReader(resp.Body))
}

// parseMeta returns the ac-* meta tags of an HTML page.
func parseMeta(r io.Reader) ([]meta, error) {
	var out []meta
	z := html.NewTokenizer(r)
	for {
		switch z.Next() {
		case html.ErrorToken:
			if err := z.Err(); err != io.EOF {
				return out, fmt.Errorf("reading page: %w", err)
			}
			return out, nil
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			if tok.DataAtom != atom.Meta {
				continue
			}
			var m meta
			var content string
			for _, a := range tok.Attr {
				switch a.Key {
				case "name":
					m.name = a.Val
				case "content":
					content = a.Val
				}
			}
			if !strings.HasPrefix(m.name, "ac-") {
				continue
			}
			fields := strings.Fields(content)
			if len(fields) != 2 {
				continue
			}
			m.prefix, m.uri = fields[0], fields[1]
			out = append(out, m)
		}
	}
}

var templateVar = regexp.MustCompile(`\{[^{}]*\}`)

func templateVars(app *App) map[string]string {
	vars := map[string]string{"version": "latest"}
	for k, v := range app.Labels {
		vars[k.String()] = v
	}
	vars["name"] = app.Name.String()
	return vars
}

// renderEndpoint fills a template for both extensions; missing names the
// first variable the app does not give.
func renderEndpoint(tpl string, vars map[string]string) (ep Endpoint, missing string) {
	render := func(ext string) string {
		return templateVar.ReplaceAllStringFunc(tpl, func(v string) string {
			key := v[1 : len(v)-1]
			if key == "ext" {
				return ext
			}
			if val, ok := vars[key]; ok {
				return val
			}
			if missing == "" {
				missing = v
			}
			return v
		})
	}
	ep = Endpoint{ACI: render("aci"), ASC: render("aci.asc")}
	return ep, missing
}
