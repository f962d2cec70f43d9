package rowdrop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rowdrop/rowdrop/export"
	"github.com/rowdrop/rowdrop/internal/state"
)

// UninstallReport is what Uninstall removed from the app's database and
// what it left in place.
type UninstallReport struct {
	DB      string          `json:"database"`
	DryRun  bool            `json:"dry_run"`
	Removed []export.Object `json:"removed"` // with DryRun: what would be removed
	// State is the pair's state directory ("" when it has none): it stays,
	// with the base copy, the conflict log and the device's identity;
	// delete it by hand once sure.
	State string `json:"state_dir,omitempty"`
	// Folder and DeviceFiles are the shared folder and this device's
	// files in it: they stay, as other devices may still need them.
	Folder      string `json:"folder,omitempty"`
	DeviceFiles string `json:"device_files,omitempty"`
}

// Uninstall removes everything rowdrop ever put into the app's database
// cfg.DB (the hint triggers, rowdrop_dirty, rowdrop_marker) in one
// transaction; with dryRun it only lists them. It holds the pair's state
// directory (when there is one) meanwhile, so no rowdrop process puts
// them back, and touches nothing else: the report says what stays.
func Uninstall(ctx context.Context, cfg Config, dryRun bool) (*UninstallReport, error) {
	if cfg.DB == "" {
		return nil, errors.New("uninstall needs the app's database (--db)")
	}
	if st, err := os.Stat(cfg.DB); err != nil {
		return nil, fmt.Errorf("database %s: %w (give the path of the app's SQLite file)", cfg.DB, err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("database %s is not a regular file", cfg.DB)
	}
	r := &UninstallReport{DB: cfg.DB, DryRun: dryRun, Folder: cfg.Folder}
	dir := cfg.State
	if dir == "" && cfg.Folder != "" {
		dir = findStateDir(cfg.DB, cfg.Folder)
	}
	if dir != "" && state.Initialised(dir) {
		st, err := state.Open(dir)
		if err != nil {
			if errors.Is(err, state.ErrLocked) {
				return nil, fmt.Errorf("%w: stop `rowdrop watch` (or the app embedding rowdrop) for %s first, or it puts rowdrop's triggers back", err, cfg.DB)
			}
			return nil, err
		}
		defer st.Close()
		r.State = dir
		dev, err := st.Value(state.KeyDevice)
		if err != nil {
			return nil, fmt.Errorf("read the device id in %s: %w", dir, err)
		}
		if dev != "" && cfg.Folder != "" {
			r.DeviceFiles = filepath.Join(cfg.Folder, dev)
		}
	}
	live, _, err := openLive(cfg)
	if err != nil {
		return nil, err
	}
	defer live.Close()
	if r.Removed, err = export.Uninstall(live, dryRun); err != nil {
		return nil, fmt.Errorf("uninstall from %s: %w", cfg.DB, err)
	}
	if r.Removed == nil {
		r.Removed = []export.Object{}
	}
	return r, nil
}
