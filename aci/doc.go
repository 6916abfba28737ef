// Package aci holds everything about images: reading and validating ACIs
// (aci/archive), the content-addressed store and the tree store of rendered
// rootfs (aci/store), fetching (aci/fetch) and signature trust (aci/trust).
package aci
