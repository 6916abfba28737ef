// Package stage2 is what runs each app inside the pod: it enters the app's
// rootfs and applies the app's credentials and environment before exec'ing
// the app, so that a missing working directory or executable is reported in
// words rather than as a bare exit status.
//
// The stage1 that assembles the pod resolves everything it can on the host
// (user and group names, the environment) and writes one App per app as JSON
// at ConfigPath(app) inside its rootfs; the helper program in cmd/stage2
// reads it there and calls RunHandlers and ExecAs. Isolators
// (capabilities, seccomp, no-new-privileges) belong in App as well, applied
// in Exec after the credentials (see issue 5).
package stage2
