// Command fetchserve is the server side of the fetch benchmark (bench.sh):
// it serves an ACI and its detached signature (made with a fresh key) from
// an HTTPS server on 127.0.0.1, and an image from go-containerregistry's
// in-process registry on 127.0.0.1 over plain HTTP, counting the blob
// downloads. Once serving, it writes DIR/env, a shell fragment:
//
//	URL=https://127.0.0.1:PORT/image.aci   the image (image.aci.asc next to it)
//	CA=DIR/ca.pem                          the server's certificate, for SSL_CERT_FILE / curl --cacert
//	KEY=DIR/key.gpg                        the signer's public key, for rkt trust
//	DOCKER=docker://127.0.0.1:PORT/bench/app:latest
//	STATS=http://127.0.0.1:PORT/_stats     prints how many blobs the registry served
//
// and serves until killed.
//
//	fetchserve -image FILE.aci -dir DIR [-docker-layers 3] [-docker-layer-size 4M]
package main

import (
	"bytes"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rktng/rkt/aci/fetch/fetchtest"
	"github.com/rktng/rkt/aci/trust"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fetchserve:", err)
		os.Exit(1)
	}
}

func run() error {
	image := flag.String("image", "", "ACI to serve")
	dir := flag.String("dir", "", "directory for env, ca.pem and key.gpg")
	layers := flag.Int64("docker-layers", 3, "layers of the docker image")
	layerSize := flag.String("docker-layer-size", "4M", "size of each docker layer (K, M suffixes)")
	flag.Parse()
	if *image == "" || *dir == "" {
		return errors.New("usage: fetchserve -image FILE.aci -dir DIR")
	}
	size, err := parseSize(*layerSize)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	img, err := os.ReadFile(*image)
	if err != nil {
		return err
	}
	key, err := trust.NewSigningKey("fetch benchmark", trust.KeyOptions{})
	if err != nil {
		return err
	}
	var sig bytes.Buffer
	if err := trust.SignDetached(&sig, key, bytes.NewReader(img)); err != nil {
		return err
	}
	pub, err := trust.ArmorPublicKey(key)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(*dir, "key.gpg")
	if err := os.WriteFile(keyFile, pub, 0o644); err != nil {
		return err
	}

	web := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/image.aci":
			w.Header().Set("ETag", `"bench"`)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(img))
		case "/image.aci.asc":
			w.Write(sig.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	web.Config.ErrorLog = log.New(io.Discard, "", 0)
	web.StartTLS()
	defer web.Close()
	caFile := filepath.Join(*dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: web.Certificate().Raw}), 0o644); err != nil {
		return err
	}

	reg := fetchtest.NewRegistry()
	mux := http.NewServeMux()
	mux.Handle("/", reg)
	mux.HandleFunc("/_stats", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, reg.BlobGets()) })
	regSrv := httptest.NewServer(mux)
	defer regSrv.Close()
	host := strings.TrimPrefix(regSrv.URL, "http://")
	dimg, err := random.Image(size, *layers)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(host+"/bench/app:latest", name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, dimg); err != nil {
		return fmt.Errorf("pushing the docker image: %w", err)
	}

	env := fmt.Sprintf("URL=%s/image.aci\nCA=%s\nKEY=%s\nDOCKER=docker://%s/bench/app:latest\nSTATS=%s/_stats\n",
		web.URL, caFile, keyFile, host, regSrv.URL)
	if err := os.WriteFile(filepath.Join(*dir, "env.tmp"), []byte(env), 0o644); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(*dir, "env.tmp"), filepath.Join(*dir, "env")); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	return nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
