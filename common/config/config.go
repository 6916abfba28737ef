// Package config reads rkt's configuration directories (system
// /usr/lib/rkt, local /etc/rkt, user ~/.config/rkt): the kinds paths,
// stage1, auth and dockerAuth, merged user over local over system, field by
// field, as rkt 1.30 did. It also renders the merged result in the shape
// `rkt config` prints. The trust keystore under trustedkeys/ is aci/trust's.
package config

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Default configuration directories, as rkt's.
const (
	DefaultSystemDir = "/usr/lib/rkt"
	DefaultLocalDir  = "/etc/rkt"
	// DefaultUserDir is relative to the user's home directory.
	DefaultUserDir = ".config/rkt"
)

// ErrInvalid is wrapped by every error about the content of a configuration
// file (bad JSON, unknown kind or version, missing or bad field, a value
// given twice in one directory).
var ErrInvalid = errors.New("invalid configuration")

// BasicCredentials are a user name and password.
type BasicCredentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// Auth is how to authenticate HTTP requests to one host: "basic" (User and
// Password) or "oauth" (a bearer Token).
type Auth struct {
	Type  string
	Basic BasicCredentials
	Token string
}

// Header returns the Authorization header for a, or nil for an unknown type.
func (a Auth) Header() http.Header {
	h := make(http.Header)
	switch a.Type {
	case AuthBasic:
		creds := base64.StdEncoding.EncodeToString([]byte(a.Basic.User + ":" + a.Basic.Password))
		h.Set("Authorization", "Basic "+creds)
	case AuthOAuth:
		h.Set("Authorization", "Bearer "+a.Token)
	default:
		return nil
	}
	return h
}

// Auth types of the auth kind.
const (
	AuthBasic = "basic"
	AuthOAuth = "oauth"
)

// Paths is the paths kind: the data directory (rkt's --dir) and the
// directory searched for stage1 images.
type Paths struct {
	Data         string
	Stage1Images string
	// ImageSizeLimit and RenderedSizeLimit bound what one image may cost
	// in the store: its uncompressed tar, and its rendered tree (beyond
	// rkt 1.30: "image-size-limit", "rendered-size-limit", e.g. "64GiB").
	// 0 leaves the store's defaults.
	ImageSizeLimit    int64
	RenderedSizeLimit int64
}

// Stage1 is the stage1 kind: the default stage1 image by name and version,
// and/or by location (an absolute path or a file, docker, http or https URL).
type Stage1 struct {
	Name     string
	Version  string
	Location string
}

// Config is the merged configuration.
type Config struct {
	// AuthPerHost maps a host (as in a URL: name[:port]) to its credentials,
	// sent with requests to that host over HTTPS.
	AuthPerHost map[string]Auth
	// DockerAuth maps a registry host to its credentials.
	DockerAuth map[string]BasicCredentials
	Paths      Paths
	Stage1     Stage1
}

func newConfig() *Config {
	return &Config{
		AuthPerHost: make(map[string]Auth),
		DockerAuth:  make(map[string]BasicCredentials),
	}
}

// AuthHeader returns the headers to send to host, or nil when none are
// configured. host is compared as written in the configuration, so a port
// must match too.
func (c *Config) AuthHeader(host string) http.Header {
	if c == nil {
		return nil
	}
	a, ok := c.AuthPerHost[host]
	if !ok {
		return nil
	}
	return a.Header()
}

// DockerCredentials returns the credentials configured for a registry host.
// "index.docker.io", "registry-1.docker.io" and "docker.io" are the same
// registry, so credentials given under any of them apply to all three.
func (c *Config) DockerCredentials(registry string) (BasicCredentials, bool) {
	if c == nil {
		return BasicCredentials{}, false
	}
	if creds, ok := c.DockerAuth[registry]; ok {
		return creds, true
	}
	if isDockerHub(registry) {
		for _, alias := range dockerHubAliases {
			if creds, ok := c.DockerAuth[alias]; ok {
				return creds, true
			}
		}
	}
	return BasicCredentials{}, false
}

var dockerHubAliases = []string{"index.docker.io", "registry-1.docker.io", "docker.io"}

func isDockerHub(registry string) bool {
	for _, a := range dockerHubAliases {
		if registry == a {
			return true
		}
	}
	return false
}

// merge copies every field set in over onto c.
func (c *Config) merge(over *Config) {
	for host, a := range over.AuthPerHost {
		c.AuthPerHost[host] = a
	}
	for reg, creds := range over.DockerAuth {
		c.DockerAuth[reg] = creds
	}
	if over.Paths.Data != "" {
		c.Paths.Data = over.Paths.Data
	}
	if over.Paths.Stage1Images != "" {
		c.Paths.Stage1Images = over.Paths.Stage1Images
	}
	if over.Paths.ImageSizeLimit != 0 {
		c.Paths.ImageSizeLimit = over.Paths.ImageSizeLimit
	}
	if over.Paths.RenderedSizeLimit != 0 {
		c.Paths.RenderedSizeLimit = over.Paths.RenderedSizeLimit
	}
	// Name and version only make sense together.
	if over.Stage1.Name != "" {
		c.Stage1.Name = over.Stage1.Name
		c.Stage1.Version = over.Stage1.Version
	}
	if over.Stage1.Location != "" {
		c.Stage1.Location = over.Stage1.Location
	}
}

// header is the part every configuration file has.
type header struct {
	RktVersion string `json:"rktVersion"`
	RktKind    string `json:"rktKind"`
}

type authOut struct {
	header
	Domains     []string `json:"domains"`
	Type        string   `json:"type"`
	Credentials any      `json:"credentials"`
}

type dockerAuthOut struct {
	header
	Registries  []string         `json:"registries"`
	Credentials BasicCredentials `json:"credentials"`
}

type pathsOut struct {
	header
	Data              string `json:"data"`
	Stage1Images      string `json:"stage1-images"`
	ImageSizeLimit    int64  `json:"image-size-limit,omitempty"`
	RenderedSizeLimit int64  `json:"rendered-size-limit,omitempty"`
}

type stage1Out struct {
	header
	Name     string `json:"name"`
	Version  string `json:"version"`
	Location string `json:"location"`
}

// MarshalJSON renders c as `rkt config` prints it: {"stage0":[...]} with one
// entry per auth domain and docker registry (sorted, so the output is
// stable), then the paths and the stage1 entries.
func (c *Config) MarshalJSON() ([]byte, error) {
	stage0 := []any{}
	for _, host := range slices.Sorted(maps.Keys(c.AuthPerHost)) {
		a := c.AuthPerHost[host]
		var creds any
		switch a.Type {
		case AuthBasic:
			creds = a.Basic
		case AuthOAuth:
			creds = struct {
				Token string `json:"token"`
			}{a.Token}
		default:
			return nil, fmt.Errorf("auth for %q has unknown type %q: %w", host, a.Type, ErrInvalid)
		}
		stage0 = append(stage0, authOut{header{"v1", kindAuth}, []string{host}, a.Type, creds})
	}
	for _, reg := range slices.Sorted(maps.Keys(c.DockerAuth)) {
		stage0 = append(stage0, dockerAuthOut{header{"v1", kindDockerAuth}, []string{reg}, c.DockerAuth[reg]})
	}
	stage0 = append(stage0,
		pathsOut{header{"v1", kindPaths}, c.Paths.Data, c.Paths.Stage1Images, c.Paths.ImageSizeLimit, c.Paths.RenderedSizeLimit},
		stage1Out{header{"v1", kindStage1}, c.Stage1.Name, c.Stage1.Version, c.Stage1.Location})
	return json.Marshal(map[string]any{"stage0": stage0})
}

// jsonErrorLine turns a JSON decoding error into "line N: reason" when it
// knows the offset, because "invalid character '}' at offset 213" is hard
// to find in a hand-edited file.
func jsonErrorLine(raw []byte, err error) string {
	var offset int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		offset = syn.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	}
	if offset < 0 || offset > int64(len(raw)) {
		return err.Error()
	}
	line := 1 + strings.Count(string(raw[:offset]), "\n")
	return fmt.Sprintf("line %d: %v", line, err)
}
