// Command fetchbench measures a verified fetch: it builds an image of the
// given size, signs it with a fresh key, serves it from an HTTPS server on
// 127.0.0.1, and times rkt's fetch (download, signature check, import into
// a fresh store) against `curl -sk URL | sha512sum` of the same file, in
// one run, printing one line per measurement and the ratio.
//
//	fetchbench [--size 200M] [--files 10000] [--gzip] [--runs 3]
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/aci/fetch"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fetchbench:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		return child(os.Args[2:])
	}
	sizeFlag := flag.String("size", "200M", "image size (K, M, G suffixes)")
	files := flag.Int("files", 10000, "number of files in the image")
	gz := flag.Bool("gzip", false, "compress the image")
	runs := flag.Int("runs", 3, "runs of each measurement (the median is reported)")
	keep := flag.String("workdir", "", "work directory (default: a temporary one, removed)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the (last) fetch to this file")
	flag.Parse()
	size, err := parseSize(*sizeFlag)
	if err != nil {
		return err
	}
	work := *keep
	if work == "" {
		if work, err = os.MkdirTemp("", "fetchbench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}

	img, err := buildImage(size, *files, *gz)
	if err != nil {
		return err
	}
	key, err := trust.NewSigningKey("fetchbench", trust.KeyOptions{})
	if err != nil {
		return err
	}
	var sig bytes.Buffer
	if err := trust.SignDetached(&sig, key, bytes.NewReader(img)); err != nil {
		return err
	}
	cfgDir := filepath.Join(work, "config")
	ks := trust.New("", cfgDir)
	pub, _ := trust.ArmorPublicKey(key)
	keyFile := filepath.Join(work, "key.gpg")
	if err := os.WriteFile(keyFile, pub, 0o644); err != nil {
		return err
	}
	if _, err := ks.Trust(context.Background(), trust.TrustOptions{Prefix: "example.com", Keys: []string{keyFile}, SkipFingerprintReview: true}); err != nil {
		return err
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bench.aci":
			w.Header().Set("ETag", `"bench"`)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(img))
		case "/bench.aci.asc":
			w.Write(sig.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	srv.EnableHTTP2 = false
	srv.StartTLS()
	defer srv.Close()
	url := srv.URL + "/bench.aci"

	fmt.Printf("image: %s, %d files, gzip=%v\n", human(int64(len(img))), *files, *gz)
	caFile := filepath.Join(work, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		return err
	}
	var curlTimes, fetchTimes, verifyTimes []time.Duration
	for i := 0; i < *runs; i++ {
		d, err := timeCurl(url)
		if err != nil {
			return err
		}
		curlTimes = append(curlTimes, d)
		d, err = timeChild(work, i, url, cfgDir, caFile, *cpuProfile, false)
		if err != nil {
			return err
		}
		fetchTimes = append(fetchTimes, d)
		d, err = timeChild(work, i, url, cfgDir, caFile, "", true)
		if err != nil {
			return err
		}
		verifyTimes = append(verifyTimes, d)
	}
	c, f, v := median(curlTimes), median(fetchTimes), median(verifyTimes)
	fmt.Printf("curl -sk URL | sha512sum:                    %v (median of %d)\n", c.Round(time.Millisecond), *runs)
	fmt.Printf("rkt fetch (download, verify, import):        %v  ratio %.2f\n", f.Round(time.Millisecond), float64(f)/float64(c))
	fmt.Printf("rkt fetch without the store (download, verify): %v  ratio %.2f\n", v.Round(time.Millisecond), float64(v)/float64(c))
	return nil
}

// timeChild runs one fetch in a new process, as `rkt fetch` would be.
func timeChild(work string, i int, url, cfgDir, caFile, profile string, noStore bool) (time.Duration, error) {
	dir := filepath.Join(work, "run"+strconv.Itoa(i))
	defer os.RemoveAll(dir)
	args := []string{"child", url, dir, cfgDir, profile}
	if noStore {
		args = append(args, "nostore")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+caFile)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("fetch child: %w", err)
	}
	return time.Since(start), nil
}

// child fetches url into a store under dir, trusting the keys of cfgDir.
func child(args []string) error {
	url, dir, cfgDir, profile := args[0], args[1], args[2], args[3]
	if profile != "" {
		pf, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer pf.Close()
		pprof.StartCPUProfile(pf)
		defer pprof.StopCPUProfile()
	}
	var st fetch.Store
	real, err := store.Open(filepath.Join(dir, "cas"))
	if err != nil {
		return err
	}
	defer real.Close()
	st = real
	if len(args) > 4 && args[4] == "nostore" {
		st = discard{real}
	}
	f, err := fetch.New(fetch.Options{Store: st, Keystore: trust.New("", cfgDir), DownloadDir: filepath.Join(dir, "dl")})
	if err != nil {
		return err
	}
	_, err = f.FetchImage(context.Background(), url, "")
	return err
}

// discard reads an image and keeps nothing: the fetch without the store.
type discard struct{ *store.Store }

func (d discard) Import(r io.Reader, _ store.ImportOptions) (store.ImageInfo, error) {
	_, err := io.Copy(io.Discard, r)
	return store.ImageInfo{}, err
}

func (d discard) GetImageManifest(string) (*schema.ImageManifest, error) {
	return schema.BlankImageManifest(), nil
}

func timeCurl(url string) (time.Duration, error) {
	start := time.Now()
	out, err := exec.Command("sh", "-c", "curl -sk "+url+" | sha512sum").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("curl: %v: %s", err, out)
	}
	return time.Since(start), nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("bad --size")
	}
	return n * mult, nil
}

func human(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// buildImage makes an image of about size bytes in files files, with
// content that compresses about as well as binaries do.
func buildImage(size int64, files int, gz bool) ([]byte, error) {
	m, err := acibuild.Manifest("example.com/bench", nil)
	if err != nil {
		return nil, err
	}
	per := int(size / int64(files))
	var x uint64 = 88172645463325252
	entries := make([]acibuild.File, 0, files)
	for i := 0; i < files; i++ {
		data := make([]byte, per)
		for j := 0; j+8 <= len(data); j += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			// Half random, half zero bytes: compressible, like binaries.
			binary.LittleEndian.PutUint32(data[j:], uint32(x))
		}
		entries = append(entries, acibuild.File{Path: fmt.Sprintf("data/%03d/f%05d", i/100, i), Mode: 0o644, Data: data})
	}
	var opts []acibuild.Option
	if gz {
		opts = append(opts, acibuild.WithGzip())
	}
	var buf bytes.Buffer
	buf.Grow(int(size) + 1<<20)
	if err := acibuild.Build(&buf, m, entries, opts...); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
