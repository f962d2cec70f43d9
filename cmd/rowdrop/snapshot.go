package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/rowdrop/rowdrop/export"
)

// cmdSnapshot exports this device's changes, then publishes a snapshot of
// its merged state into the shared folder, for every pair: new devices join
// from it, and devices whose files were collected re-base on it.
//
// With --json and one pair, stdout is one JSON object; with several pairs,
// a JSON array of them.
func cmdSnapshot(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("[pair flags] [--json]", pairFlags)
	asJSON := fs.Bool("json", false, "print JSON on stdout (an object; an array when several databases are configured)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (snapshot takes only flags; see `rowdrop snapshot -h`)", pos[0])
	}
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
		if !*asJSON {
			fmt.Fprintf(a.stdout, "%s: snapshot %d published: %s (%d rows, %d bytes compressed from %d), includes %s\n",
				p.label(), r.Seq, r.File, r.Rows, r.Bytes, r.Raw, seenText(r.Seen))
		}
	}
	if *asJSON {
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
