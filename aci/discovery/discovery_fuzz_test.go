package discovery

import (
	"strings"
	"testing"

	"github.com/rktng/rkt/aci/fetch/fetchtest"
)

// FuzzDiscoveryHTML feeds discovery pages (what any web server answers) to
// the meta tag parser and the endpoint templating, with an app name.
func FuzzDiscoveryHTML(f *testing.F) {
	f.Add(fetchtest.DiscoveryPage(
		[2]string{"ac-discovery", "example.com https://example.com/{os}/{arch}/{name}-{version}.{ext}"},
		[2]string{"ac-discovery-pubkeys", "example.com https://example.com/pubkeys.gpg"},
	), "example.com/project/app:1.0,os=linux,arch=amd64")
	f.Add(`<meta name="ac-discovery" content="a b"><meta name=ac-discovery content='x {a{b}c} {}'/>`, "a")
	f.Add("<html><head><meta name=\"ac-discovery\" content=\"\x00 \xff\">", "example.com/app")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, page, name string) {
		metas, err := parseMeta(strings.NewReader(page))
		if err != nil && len(metas) > 0 && metas[0].uri == "" {
			t.Fatalf("meta with an empty uri: %+v", metas)
		}
		for _, m := range metas {
			if m.prefix == "" || m.uri == "" || !strings.HasPrefix(m.name, "ac-") {
				t.Fatalf("bad meta kept: %+v", m)
			}
		}
		app, err := ParseApp(name)
		if err != nil {
			return
		}
		if app.Name.Empty() {
			t.Fatalf("ParseApp(%q) gave an empty name", name)
		}
		vars := templateVars(app)
		for _, m := range metas {
			ep, missing := renderEndpoint(m.uri, vars)
			if missing == "" && (strings.Contains(ep.ACI, "{ext}") || strings.Contains(ep.ASC, "{ext}")) {
				t.Fatalf("template %q left {ext} in %+v", m.uri, ep)
			}
		}
		_ = describeMiss(metas, "ac-discovery", app.Name.String(), nil)
	})
}
