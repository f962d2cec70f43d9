package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop"
)

// newSyncCmd is `rowdrop sync`: one cycle for every pair: export this
// device's changes, then import and merge every applicable file from the
// other devices.
//
// With --json, stdout is one JSON object per pair (an array when several
// databases are configured) with the facts the log reports. The exit status
// is 3 when everything ran but files are held or broken.
func newSyncCmd(a *app) *cobra.Command {
	var asJSON, confirm bool
	cmd := &cobra.Command{
		Use:   "sync [pair flags] [--json] [--confirm-mass-change]",
		Short: "export this device's changes, import everyone else's",
		Long: `Sync once: export this device's changes into the shared folder, then import and
merge every other device's files that are complete. It never copies the live
database file; it writes into it only inside transactions.

Exit status 3 when the sync ran but files are held or broken (` + "`rowdrop status`" + ` says
which and why). --confirm-mass-change publishes an export the mass-change guard
held because it deletes or overwrites most of a table.`,
		Example: `  rowdrop sync --db ~/notes/notes.db --folder ~/Sync/notes --device laptop
  rowdrop sync --config ~/.config/rowdrop/rowdrop.yaml --json | jq .imported
  rowdrop sync --db ~/notes/notes.db --folder ~/Sync/notes --confirm-mass-change`,
		Args: noArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.syncAll(ctx, asJSON, confirm)
		}),
	}
	addSettingFlags(cmd.Flags(), pairFlags)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what each sync did as JSON on stdout (an object; an array when several databases are configured)")
	cmd.Flags().BoolVar(&confirm, "confirm-mass-change", false, "publish an export the mass-change guard held (it deletes or overwrites most of a table)")
	return cmd
}

// syncAll syncs every pair once.
func (a *app) syncAll(ctx context.Context, asJSON, confirm bool) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	for i := range pairs {
		pairs[i].ConfirmMassChange = confirm
	}
	// Ctrl-C cancels the step through its context: SQLite rolls back what
	// was not committed, and the next sync picks up from there.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// One pair failing (a stick not mounted) does not keep the others from
	// syncing; the failures are reported together, on one line.
	var failed []string
	var reports []syncReport
	var notApplied notAllAppliedError
	for _, p := range pairs {
		rep, err := a.syncOnce(ctx, p)
		if err != nil {
			if len(pairs) == 1 {
				if asJSON && rep.Device != "" {
					writeJSON(a.stdout, rep)
				}
				return err
			}
			failed = append(failed, p.label()+": "+err.Error())
		}
		notApplied.held += rep.Imported.Held
		notApplied.broken += rep.Imported.Broken
		reports = append(reports, rep)
	}
	if asJSON {
		var err error
		if len(reports) == 1 {
			err = writeJSON(a.stdout, reports[0])
		} else {
			err = writeJSON(a.stdout, reports)
		}
		if err != nil {
			return err
		}
	}
	switch len(failed) {
	case 0:
		if notApplied.held+notApplied.broken > 0 {
			return &notApplied
		}
		return nil
	case 1:
		return fmt.Errorf("%s", failed[0])
	}
	return fmt.Errorf("%d of %d databases failed: %s", len(failed), len(pairs), strings.Join(failed, "; "))
}

// syncReport is what one pair's sync did: `sync --json` prints it, and the
// log says the same (report).
type syncReport struct {
	Database string `json:"database"`
	Folder   string `json:"folder"`
	Device   string `json:"device"`    // this device's name
	DeviceID string `json:"device_id"` // and its id
	// InSync: nothing was exported or imported, and nothing waits.
	InSync   bool           `json:"in_sync"`
	Exported exportedReport `json:"exported"`
	Imported importedReport `json:"imported"`
	// Error says why the sync failed ("" when it did not); only a sync of
	// several databases prints failed ones.
	Error string `json:"error,omitempty"`
}

// exportedReport is the export part of a syncReport.
type exportedReport struct {
	Seq     uint64   `json:"seq"`     // the file's sequence number; 0: nothing exported
	File    string   `json:"file"`    // its path in the folder ("" if none published)
	Changes int64    `json:"changes"` // changed rows in it
	Tables  []string `json:"tables"`
	// Pending: the file waits in the outbox (the folder is not available).
	Pending bool `json:"pending"`
}

// importedReport is the import part of a syncReport.
type importedReport struct {
	Applied   int   `json:"applied"` // files applied
	Changes   int64 `json:"changes"`
	Conflicts int64 `json:"new_conflicts"`
	Waiting   int   `json:"waiting"` // files not applied yet, expected to resolve by themselves
	Held      int   `json:"held"`    // whole, but cannot be applied yet
	Broken    int   `json:"broken"`  // never applied
}

// newSyncReport describes one pair's cycle.
func newSyncReport(p pairConfig, s *rowdrop.Syncer, r rowdrop.Report) syncReport {
	id := s.Identity()
	rep := syncReport{Database: p.DB, Folder: p.Folder, Device: id.Name, DeviceID: id.Device,
		Exported: exportedReport{Seq: r.Export.Seq, File: r.Export.File, Changes: r.Export.Changes, Tables: r.Export.Tables, Pending: r.Export.Pending},
		Imported: importedReport{Applied: r.Import.Applied, Changes: r.Import.Changes, Conflicts: r.Import.Conflicts,
			Waiting: r.Import.Waiting, Held: r.Import.Held, Broken: r.Import.Broken}}
	if rep.Exported.Tables == nil {
		rep.Exported.Tables = []string{}
	}
	rep.InSync = !r.Export.Pending && r.Export.Seq == 0 && r.Import.Applied == 0 &&
		r.Import.Waiting+r.Import.Held+r.Import.Broken == 0
	return rep
}

// syncOnce opens a pair, syncs it once and closes it. The report is filled
// as far as the sync got (Device is empty when the pair did not open).
func (a *app) syncOnce(ctx context.Context, p pairConfig) (syncReport, error) {
	prog := a.newProgress(p.label())
	defer prog.done()
	rep := syncReport{Database: p.DB, Folder: p.Folder, Exported: exportedReport{Tables: []string{}}}
	s, err := a.open(ctx, p, lockWait, prog.callback())
	if err != nil {
		rep.Error = oneLine(err.Error())
		return rep, err
	}
	defer s.Close()
	r, err := s.Sync(ctx)
	rep = newSyncReport(p, s, r)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted (%w): nothing was left half-done; run `rowdrop sync` again to finish", err)
		}
		rep.InSync = false
		rep.Error = oneLine(err.Error())
		return rep, err
	}
	a.report(p, s, r, true)
	return rep, nil
}

// report logs the outcome of one `rowdrop sync` cycle; exitSays as in
// reportResult.
func (a *app) report(p pairConfig, s *rowdrop.Syncer, r rowdrop.Report, exitSays bool) {
	log := a.log.With("db", p.label())
	if newSyncReport(p, s, r).InSync {
		log.Info("in sync: nothing to export or import", "device", s.Identity().Name)
	}
	reportResult(log, r, nil, exitSays)
}

// reportResult logs what a cycle did beyond what the library logs itself:
// an export parked in the outbox, files not applied, new conflicts. With
// last, the files-not-applied warning repeats only when the counts change
// (watch runs a step every rescan; one warning per situation is enough).
// With exitSays, the command's last line (exit status 3) counts the held
// and broken files, each of which the import already logged by name: the
// summary is logged only for files still arriving, so that a held file is
// not told twice.
func reportResult(log *slog.Logger, r rowdrop.Report, last *[3]int, exitSays bool) {
	if r.Export.Pending {
		log.Warn("exported into the outbox: the shared folder is not available; the file is published when it is back", "seq", r.Export.Seq)
	}
	counts := [3]int{r.Import.Waiting, r.Import.Held, r.Import.Broken}
	changed := last == nil || *last != counts
	if last != nil {
		*last = counts
	}
	n := counts[0] + counts[1] + counts[2]
	if exitSays {
		n = counts[0]
	}
	if n > 0 && changed {
		log.Warn("some files were not applied: see `rowdrop status` for which and why",
			"waiting", counts[0], "held", counts[1], "broken", counts[2])
	}
	if r.Import.Conflicts > 0 {
		log.Info("values lost a merge and were kept in the conflict log: see `rowdrop conflicts`", "new_conflicts", r.Import.Conflicts)
	}
}
