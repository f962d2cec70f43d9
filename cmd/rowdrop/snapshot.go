package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop/export"
)

// newSnapshotCmd is `rowdrop snapshot`: it exports this device's changes,
// then publishes a snapshot of its merged state into the shared folder, for
// every pair: new devices join from it, and devices whose files were
// collected re-base on it.
//
// With --json and one pair, stdout is one JSON object; with several pairs,
// a JSON array of them.
func newSnapshotCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "snapshot [pair flags] [--json]",
		Short: "publish a snapshot that new devices join from",
		Long: `Export this device's changes, then publish a snapshot of its merged state into
the shared folder: new devices join from it (rowdrop restore), and devices whose
old files were collected re-base on it. watch publishes one weekly, or after 500
files, by itself.`,
		Example: `  rowdrop snapshot --db ~/notes/notes.db --folder ~/Sync/notes`,
		Args:    noArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.snapshotAll(ctx, asJSON)
		}),
	}
	addSettingFlags(cmd.Flags(), pairFlags)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON on stdout (an object; an array when several databases are configured)")
	return cmd
}

// snapshotAll publishes a snapshot of every pair.
func (a *app) snapshotAll(ctx context.Context, asJSON bool) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var all []export.SnapshotResult
	for _, p := range pairs {
		r, err := a.snapshotOnce(ctx, p)
		if err != nil {
			return pairErr(pairs, p, err)
		}
		all = append(all, r)
		if !asJSON {
			fmt.Fprintf(a.stdout, "%s: snapshot %d published: %s (%d rows, %d bytes compressed from %d), includes %s\n",
				p.label(), r.Seq, r.File, r.Rows, r.Bytes, r.Raw, seenText(r.Seen))
		}
	}
	if asJSON {
		if len(all) == 1 {
			return writeJSON(a.stdout, all[0])
		}
		return writeJSON(a.stdout, all)
	}
	return nil
}

func (a *app) snapshotOnce(ctx context.Context, p pairConfig) (export.SnapshotResult, error) {
	prog := a.newProgress(p.label())
	defer prog.done()
	s, err := a.open(ctx, p, lockWait, prog.callback())
	if err != nil {
		return export.SnapshotResult{}, err
	}
	defer s.Close()
	r, err := s.Snapshot(ctx)
	if err != nil && ctx.Err() != nil {
		return r, fmt.Errorf("interrupted (%w): no snapshot was published; run `rowdrop snapshot` again", err)
	}
	return r, err
}

// seenText renders a Seen vector: "files 1..12 of abcd…, 1..7 of efgh…".
func seenText(seen map[string]uint64) string {
	var parts []string
	for d, n := range seen {
		parts = append(parts, fmt.Sprintf("files 1..%d of %s", n, d))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
