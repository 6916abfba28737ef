// Package aci holds everything about images: reading and validating ACIs
// (aci/archive), the content-addressed store and the tree store of rendered
// rootfs (aci/store), fetching (aci/fetch, with aci/httpget, the one GET
// of small resources that fetching, discovery and trust share) and
// signature trust (aci/trust).
package aci
