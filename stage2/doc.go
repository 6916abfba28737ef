// Package stage2 is what runs each app inside a stage1-host pod: it gives
// the app its /proc, /sys and /dev (Prepare), moves into the app's cgroups
// (JoinCgroups), enters the app's rootfs and applies its credentials,
// environment and confinement before exec'ing the app, so that a missing
// working directory or executable is reported in words rather than as a
// bare exit status.
//
// The stage1 resolves everything it can on the host (user and group names,
// the environment, the isolators) and writes one App per app as JSON at
// ConfigPath(app) inside its rootfs; the helper program in cmd/stage2 reads
// it there for each of the app's units: run (Prepare, the pre-start
// handlers, ExecAs), post-stop (RunHandlers), enter (ExecAs of the entered
// command, confined as the app is) and the reaper (package reaper), which
// records the app's exit status and ends the pod. Package isolators turns
// the appc isolators into the resource limits the stage1 sets and the
// Confinement (capabilities, seccomp, no-new-privileges, oom_score_adj)
// that ExecAs applies around the change of credentials.
//
// stage2 imports only common/: the stage1 writes its configuration, and
// nothing of the stage1 runs inside the pod.
package stage2
