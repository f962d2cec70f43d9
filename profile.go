package rowdrop

import (
	"fmt"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/profile"
)

// withProfile lays the app profile cfg.App names, or the one the live
// database's schema (read on live, rowdrop's read-write connection: a
// read-only one could not roll back a hot journal) matches, under cfg. It
// returns the profile (nil for none).
func withProfile(cfg Config, live *sqlite.Conn) (Config, *profile.Profile, error) {
	if cfg.App == profile.None {
		return cfg, nil, nil
	}
	all, err := profile.Builtin()
	if err != nil {
		return cfg, nil, err
	}
	cols, err := profile.ReadColumns(live)
	if err != nil {
		return cfg, nil, fmt.Errorf("database %s: %w", cfg.DB, err)
	}
	var p *profile.Profile
	if cfg.App != "" {
		if p, err = profile.Find(all, cfg.App); err != nil {
			return cfg, nil, fmt.Errorf("database %s: %w (fix app: in the config)", cfg.DB, err)
		}
	} else if p = profile.Detect(all, cols); p == nil {
		return cfg, nil, nil
	}
	u := p.Under(profile.User{Include: cfg.Include, Exclude: cfg.Exclude, LocalColumns: cfg.LocalColumns,
		StandIns: cfg.StandIns, Identity: cfg.Identity, AfterApply: cfg.AfterApply}, cols)
	cfg.Include, cfg.Exclude, cfg.LocalColumns = u.Include, u.Exclude, u.LocalColumns
	cfg.StandIns, cfg.Identity, cfg.AfterApply = u.StandIns, u.Identity, u.AfterApply
	return cfg, p, nil
}

// excludedWhy says, per table the profile excludes, why (status, inspect).
func excludedWhy(p *profile.Profile) map[string]string {
	if p == nil {
		return nil
	}
	out := map[string]string{}
	for _, t := range p.Exclude {
		why := p.Notes[t]
		if why == "" {
			why = "device-local"
		}
		out[t] = fmt.Sprintf("excluded by the %s profile: %s", p.Name, why)
	}
	return out
}
