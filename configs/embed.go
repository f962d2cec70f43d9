// Package configs ships rowdrop's example files and the app profiles
// (apps/*.yaml), embedded so the binary needs no files beside it.
package configs

import "embed"

// Apps holds the app profiles, one YAML file per app (internal/profile
// reads them).
//
//go:embed apps/*.yaml
var Apps embed.FS
