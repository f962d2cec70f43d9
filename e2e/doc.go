// Package e2e holds rowdrop's end-to-end tests against real Syncthing.
//
// The tests are opt-in (ROWDROP_E2E_SYNCTHING=1) and Linux-only: two
// Syncthing instances run inside a private network namespace that has only
// a loopback interface, driven by stpair.sh in this directory. See
// README.md for how to run them.
package e2e
