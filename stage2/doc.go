// Package stage2 is what runs each app inside the pod: it enters the app's
// rootfs and applies the app's isolators before exec'ing the app.
package stage2
