// Package e2e holds rowdrop's end-to-end tests against real Syncthing.
//
// The tests run by default, as part of `go test ./...`, and are Linux-only:
// two Syncthing instances run inside a private network namespace that has
// only a loopback interface, driven by stpair.sh in this directory. They
// skip where syncthing or such a namespace is not available, and with
// ROWDROP_E2E_SYNCTHING=0 or -short. See README.md.
package e2e
