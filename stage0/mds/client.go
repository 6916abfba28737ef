package mds

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// clientTimeout bounds a registration round trip: rkt run waits for it
// before starting the pod.
const clientTimeout = 10 * time.Second

// Register registers a pod with the service listening on socketPath and
// returns the pod's token, to hand to the stage1 (--mds-token), which puts
// it in the apps' AC_METADATA_URL. Errors wrap ErrNotRunning when nothing
// answers on the socket and ErrRejected when the service refuses the pod.
func Register(socketPath string, reg Registration) (token string, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("registering pod %s with the metadata service at %s: %w", reg.UUID, socketPath, err)
		}
	}()
	body, err := json.Marshal(reg)
	if err != nil {
		return "", err
	}
	resp, err := call(socketPath, http.MethodPut, reg.UUID, body)
	if err != nil {
		return "", err
	}
	if resp.status != http.StatusOK {
		return "", fmt.Errorf("%s: %w", resp.message(), ErrRejected)
	}
	var r registered
	if err := json.Unmarshal(resp.body, &r); err != nil || r.Token == "" {
		return "", fmt.Errorf("unexpected answer %q", resp.body)
	}
	return r.Token, nil
}

// Unregister tells the service on socketPath to forget the pod uuid, so
// that its token stops working. Errors wrap ErrNotRunning when nothing
// answers and ErrNotRegistered when the service does not know the pod.
func Unregister(socketPath, uuid string) (err error) {
	resp, err := call(socketPath, http.MethodDelete, uuid, nil)
	if err == nil {
		switch resp.status {
		case http.StatusNoContent, http.StatusOK:
			return nil
		case http.StatusNotFound:
			err = ErrNotRegistered
		default:
			err = fmt.Errorf("%s: %w", resp.message(), ErrRejected)
		}
	}
	return fmt.Errorf("unregistering pod %s from the metadata service at %s: %w", uuid, socketPath, err)
}

type response struct {
	status int
	body   []byte
}

func (r response) message() string {
	if m := strings.TrimSpace(string(r.body)); m != "" {
		return m
	}
	return http.StatusText(r.status)
}

func call(socketPath, method, uuid string, body []byte) (response, error) {
	client := &http.Client{
		Timeout: clientTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socketPath)
			},
			DisableKeepAlives: true,
		},
	}
	req, err := http.NewRequest(method, "http://metadata-service/pods/"+url.PathEscape(uuid), bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", contentJSON)
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return response{}, fmt.Errorf("%w (start `rkt metadata-service`)", ErrNotRunning)
		}
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, body: b}, nil
}
