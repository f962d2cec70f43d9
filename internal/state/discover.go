package state

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/rowdrop/rowdrop/internal/fsx"
)

// Breadcrumb files in a state directory: plain text that lets
// FindDir recognise the directory when the shared folder comes back under
// another path (a USB stick mounted elsewhere).
const (
	breadcrumbDevice   = "device"
	breadcrumbDatabase = "database"
)

// DefaultDir is the state directory for a (database, folder) pair:
// $XDG_STATE_HOME/rowdrop/<database file name>-<hash of both absolute paths>.
func DefaultDir(dbPath, folder string) string {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".local", "state")
	}
	a, _ := filepath.Abs(dbPath)
	b, _ := filepath.Abs(folder)
	// PathKey: where names fold case, two spellings of one path are one pair.
	h := sha256.Sum256([]byte(fsx.PathKey(a) + "\x00" + fsx.PathKey(b)))
	return filepath.Join(base, "rowdrop", filepath.Base(a)+"-"+hex.EncodeToString(h[:6]))
}

// FindDir returns DefaultDir for the pair, unless that does not exist yet
// and another default state directory of the same database belongs to a
// device that publishes into this folder (publishes reports whether the
// folder has that device's directory): then the folder was mounted under
// another path, and that device continues.
func FindDir(dbPath, folder string, publishes func(device string) bool) string {
	def := DefaultDir(dbPath, folder)
	if _, err := os.Stat(def); err == nil {
		return def
	}
	absDB, _ := filepath.Abs(dbPath)
	parent := filepath.Dir(def)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return def
	}
	for _, e := range ents {
		dir := filepath.Join(parent, e.Name())
		dev, err1 := os.ReadFile(filepath.Join(dir, breadcrumbDevice))
		dbp, err2 := os.ReadFile(filepath.Join(dir, breadcrumbDatabase))
		if err1 != nil || err2 != nil || !fsx.SamePath(string(dbp), absDB) {
			continue
		}
		if publishes(string(dev)) {
			return dir
		}
	}
	return def
}

// LeaveBreadcrumbs writes the files FindDir reads into state directory
// dir: the device id and the database's absolute path.
func LeaveBreadcrumbs(dir, device, dbPath string) error {
	absDB, err := filepath.Abs(dbPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, breadcrumbDevice), []byte(device), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, breadcrumbDatabase), []byte(absDB), 0o600)
}
