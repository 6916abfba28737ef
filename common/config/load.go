package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Kinds, and the subdirectory each is read from.
const (
	kindPaths      = "paths"
	kindStage1     = "stage1"
	kindAuth       = "auth"
	kindDockerAuth = "dockerAuth"
)

var subdirKinds = []struct {
	dir   string
	kinds []string
}{
	{"auth.d", []string{kindAuth, kindDockerAuth}},
	{"paths.d", []string{kindPaths}},
	{"stage1.d", []string{kindStage1}},
}

// Load reads the system, local and user configuration directories and
// merges them, user over local over system, field by field. An empty
// directory name, or a directory that does not exist, contributes nothing.
// Within one directory, a value given twice (two files configuring the same
// domain, say) is an error, because which one wins would depend on file
// names.
func Load(system, local, user string) (*Config, error) {
	cfg := newConfig()
	for _, dir := range []string{system, local, user} {
		if dir == "" {
			continue
		}
		sub, err := LoadDir(dir)
		if err != nil {
			return nil, err
		}
		cfg.merge(sub)
	}
	return cfg, nil
}

// LoadDir reads one configuration directory: *.json files in auth.d,
// paths.d and stage1.d, in lexical order. Other files and subdirectories
// are ignored, as rkt did.
func LoadDir(dir string) (*Config, error) {
	cfg := newConfig()
	if ok, err := isDir(dir); err != nil || !ok {
		return cfg, err
	}
	for _, sd := range subdirKinds {
		d := filepath.Join(dir, sd.dir)
		ok, err := isDir(d)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("reading configuration directory %s: %w", d, err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || filepath.Ext(e.Name()) != ".json" {
				continue
			}
			if err := parseFile(cfg, filepath.Join(d, e.Name()), sd.kinds); err != nil {
				return nil, err
			}
		}
	}
	return cfg, nil
}

func isDir(path string) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading configuration directory %s: %w", path, err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("configuration directory %s is not a directory: %w", path, ErrInvalid)
	}
	return true, nil
}

// fileError names the file and the reason, wrapping ErrInvalid.
func fileError(path, format string, args ...any) error {
	return fmt.Errorf("configuration file %s: %s: %w", path, fmt.Sprintf(format, args...), ErrInvalid)
}

func parseFile(cfg *Config, path string, kinds []string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading configuration file %s: %w", path, err)
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return fileError(path, "bad JSON at %s", jsonErrorLine(raw, err))
	}
	if h.RktKind == "" {
		return fileError(path, "no rktKind")
	}
	if h.RktVersion == "" {
		return fileError(path, "no rktVersion")
	}
	known := false
	for _, k := range kinds {
		known = known || k == h.RktKind
	}
	if !known {
		return fileError(path, "kind %q does not belong in %s (expected %s)",
			h.RktKind, filepath.Base(filepath.Dir(path)), strings.Join(quoteAll(kinds), " or "))
	}
	if h.RktVersion != "v1" {
		return fileError(path, "unknown rktVersion %q for kind %q (known: \"v1\")", h.RktVersion, h.RktKind)
	}
	var perr error
	switch h.RktKind {
	case kindAuth:
		perr = parseAuth(cfg, raw)
	case kindDockerAuth:
		perr = parseDockerAuth(cfg, raw)
	case kindPaths:
		perr = parsePaths(cfg, raw)
	case kindStage1:
		perr = parseStage1(cfg, raw)
	}
	if perr != nil {
		return fileError(path, "%s", jsonErrorLine(raw, perr))
	}
	return nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// decode ignores unknown fields, as rkt did, so that files written for rkt
// (with comments in extra fields, say) keep loading; missing required
// fields are caught by the parsers.
func decode(raw []byte, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return errors.New("empty")
	}
	return json.Unmarshal(raw, v)
}

func parseAuth(cfg *Config, raw []byte) error {
	var a struct {
		header
		Domains     []string        `json:"domains"`
		Type        string          `json:"type"`
		Credentials json.RawMessage `json:"credentials"`
	}
	if err := decode(raw, &a); err != nil {
		return err
	}
	if len(a.Domains) == 0 {
		return errors.New("no domains")
	}
	auth := Auth{Type: a.Type}
	switch a.Type {
	case AuthBasic:
		if err := decode(a.Credentials, &auth.Basic); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
		if err := checkBasic(auth.Basic); err != nil {
			return err
		}
	case AuthOAuth:
		var o struct {
			Token string `json:"token"`
		}
		if err := decode(a.Credentials, &o); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
		if o.Token == "" {
			return errors.New("no oauth token")
		}
		auth.Token = o.Token
	case "":
		return errors.New("no auth type")
	default:
		return fmt.Errorf("unknown auth type %q (known: \"basic\", \"oauth\")", a.Type)
	}
	for _, d := range a.Domains {
		if _, dup := cfg.AuthPerHost[d]; dup {
			return fmt.Errorf("auth for domain %q is already configured in this directory", d)
		}
		cfg.AuthPerHost[d] = auth
	}
	return nil
}

func checkBasic(b BasicCredentials) error {
	if b.User == "" {
		return errors.New("no user in credentials")
	}
	if b.Password == "" {
		return errors.New("no password in credentials")
	}
	return nil
}

func parseDockerAuth(cfg *Config, raw []byte) error {
	var a struct {
		header
		Registries  []string         `json:"registries"`
		Credentials BasicCredentials `json:"credentials"`
	}
	if err := decode(raw, &a); err != nil {
		return err
	}
	if len(a.Registries) == 0 {
		return errors.New("no registries")
	}
	if err := checkBasic(a.Credentials); err != nil {
		return err
	}
	for _, r := range a.Registries {
		if _, dup := cfg.DockerAuth[r]; dup {
			return fmt.Errorf("credentials for docker registry %q are already configured in this directory", r)
		}
		cfg.DockerAuth[r] = a.Credentials
	}
	return nil
}

func parsePaths(cfg *Config, raw []byte) error {
	var p struct {
		header
		Data              string          `json:"data"`
		Stage1Images      string          `json:"stage1-images"`
		ImageSizeLimit    json.RawMessage `json:"image-size-limit"`
		RenderedSizeLimit json.RawMessage `json:"rendered-size-limit"`
	}
	if err := decode(raw, &p); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *int64
	}{{"image-size-limit", p.ImageSizeLimit, &cfg.Paths.ImageSizeLimit}, {"rendered-size-limit", p.RenderedSizeLimit, &cfg.Paths.RenderedSizeLimit}} {
		if len(f.raw) == 0 {
			continue
		}
		n, err := parseSizeJSON(f.raw)
		if err != nil {
			return fmt.Errorf("%s %s: %w", f.name, f.raw, err)
		}
		if *f.dst != 0 {
			return fmt.Errorf("%s is already configured in this directory", f.name)
		}
		*f.dst = n
	}
	for _, f := range []struct {
		name, val string
		dst       *string
	}{{"data", p.Data, &cfg.Paths.Data}, {"stage1-images", p.Stage1Images, &cfg.Paths.Stage1Images}} {
		if f.val == "" {
			continue
		}
		if !filepath.IsAbs(f.val) {
			return fmt.Errorf("%s directory %q is not an absolute path", f.name, f.val)
		}
		if *f.dst != "" {
			return fmt.Errorf("%s directory is already configured in this directory", f.name)
		}
		*f.dst = f.val
	}
	return nil
}

var stage1Schemes = map[string]bool{"file": true, "docker": true, "http": true, "https": true}

func parseStage1(cfg *Config, raw []byte) error {
	var s struct {
		header
		Name     string `json:"name"`
		Version  string `json:"version"`
		Location string `json:"location"`
	}
	if err := decode(raw, &s); err != nil {
		return err
	}
	if s.Name == "" && s.Version != "" {
		return errors.New("stage1 version given without a name")
	}
	if s.Name != "" && s.Version == "" {
		return errors.New("stage1 name given without a version")
	}
	if s.Location != "" && !filepath.IsAbs(s.Location) {
		u, err := url.Parse(s.Location)
		if err != nil {
			return fmt.Errorf("stage1 location %q is not a valid URL: %w", s.Location, err)
		}
		if u.Scheme == "" {
			return fmt.Errorf("stage1 location %q is neither an absolute path nor a URL", s.Location)
		}
		if !stage1Schemes[u.Scheme] {
			return fmt.Errorf("stage1 location %q has scheme %q (allowed: docker, file, http, https)", s.Location, u.Scheme)
		}
	}
	if s.Name != "" {
		if cfg.Stage1.Name != "" {
			return errors.New("stage1 name and version are already configured in this directory")
		}
		cfg.Stage1.Name, cfg.Stage1.Version = s.Name, s.Version
	}
	if s.Location != "" {
		if cfg.Stage1.Location != "" {
			return errors.New("stage1 location is already configured in this directory")
		}
		cfg.Stage1.Location = s.Location
	}
	return nil
}

// parseSizeJSON reads a size limit: a number of bytes, or a string such
// as "512MiB", "64GiB", "1TiB" (K, M, G, T with or without "iB": powers
// of 1024).
func parseSizeJSON(raw json.RawMessage) (int64, error) {
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil {
		if n <= 0 {
			return 0, errors.New("must be positive")
		}
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, errors.New("want a number of bytes or a string like \"64GiB\"")
	}
	return ParseSize(s)
}

// ParseSize parses "4096", "512M", "512MiB", "64G", "1TiB".
func ParseSize(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGTiBb")
	unit := strings.TrimSuffix(strings.TrimSuffix(s[len(num):], "B"), "i")
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if !ok || err != nil || n <= 0 || n > (1<<62)>>sh {
		return 0, fmt.Errorf("bad size %q: want a positive number of bytes, or with K, M, G or T (powers of 1024)", s)
	}
	return n << sh, nil
}
