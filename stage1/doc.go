// Package stage1 is the default stage1: it boots systemd inside the pod with
// systemd-nspawn, one systemd unit per app. Its entrypoints follow the
// contract in common/stage1.
package stage1
