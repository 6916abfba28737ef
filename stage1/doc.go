// Package stage1 is the default stage1 (coreos.com/rkt/stage1-host): it
// boots the host's systemd inside the pod with systemd-nspawn, one systemd
// service per app. Its entrypoints follow the contract in common/stage1.
//
// The image is packed by aci/acibuild/mkstage1 from the host's systemd,
// the static units in units/ and two Go binaries: host (the entrypoints: boot is run,
// enter, teardown is stop and gc) and ../stage2/cmd/stage2 (what runs
// inside the pod for each app, including the reaper of stage2/reaper). cgroups
// gives each pod its own cgroups, machined its machinectl registration.
// The tests beside this file boot real pods from hand-made pod directories.
package stage1
