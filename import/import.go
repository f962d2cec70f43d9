package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
	"github.com/rowdrop/rowdrop/merge"
)

// File statuses recorded for status reports.
const (
	StatusWaiting = "waiting" // incomplete or gap: expected to resolve by itself
	StatusHeld    = "held"    // whole, but cannot be applied yet (reason says why)
	StatusBroken  = "broken"  // foreign, invalid or hostile: never applied
)

// Importer applies other devices' files.
type Importer struct {
	Folder   *folder.Folder // the shared folder; its limits bound what is read
	State    *state.Dir
	Self     state.Identity
	Clock    *hlc.Clock
	Engine   *merge.Engine
	Tables   map[string]*schema.Table // synced here
	Excluded map[string]bool          // present here but not synced (partial sync): their parts are kept (held.go)
	// Changed are the tables whose live shape changed here in a way the
	// base copy cannot follow (export.SchemaProblem): not synced until it
	// is resolved; their parts of others' files are held (held.go).
	Changed map[string]Changed
	Log     *slog.Logger
	Now     func() time.Time
	// Progress, if set, is called after each applied file.
	Progress func(done, total int, file string)
	// Causal applies a file only after every file its writer had applied
	// (its header's seen vector). Re-keying needs it: a reference to a
	// shared id means the row its writer saw first, so every row its
	// writer had seen must be known here when the reference arrives.
	Causal bool

	applied map[string]uint64              // during Import
	scan    *folder.Scan                   // during Import
	acks    map[string]map[uint64][]ackSum // during Import, read when first needed (chain.go)
	files   map[string][]folder.Entry      // during Import: the scan's changesets, by device
	pending map[string]map[string]bool     // during Import: device → tables with a held part (held.go)
	retired map[string]bool                // during Import: devices retired here (devices forget)
	copyFor map[string]string              // while a held part is read from its copy: folder path → the copy (heldcopy.go)

	orderWindow int // tests: index entries sorted at a time (0: orderWindow)
}

// Result summarises an import.
type Result struct {
	Applied   int
	Changes   int64
	Conflicts int64
	Waiting   int
	Held      int // files held whole, and tables held apart (TablesHeld)
	Broken    int
	// TablesHeld counts the tables with a part of another device's file
	// held here (held.go): their shapes differ, or they are unknown or
	// changed here; counted in Held too. Released counts the held parts
	// applied by this import.
	TablesHeld int
	Released   int
	MaxLock    time.Duration // longest live write transaction
	Locks      int           // live write transactions of the merges (merge.Stats.Locks)
	LongLocks  int           // of those, held longer than merge.LongLock
	Corrected  int64
	// Copied counts the changes a snapshot's merge copied set-wise
	// (merge.Stats.Copied), included in Changes.
	Copied int64
}

// AddLocks adds st's live write transactions to r.
func (r *Result) AddLocks(st merge.Stats) {
	r.MaxLock = max(r.MaxLock, st.MaxLock)
	r.Locks += st.Locks
	r.LongLocks += st.LongLocks
}

func (im *Importer) now() time.Time {
	if im.Now != nil {
		return im.Now()
	}
	return time.Now()
}

func sortedKeys(m map[string]uint64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (im *Importer) log() *slog.Logger {
	if im.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return im.Log
}

// Import scans the folder and applies every file that can be applied.
func (im *Importer) Import(ctx context.Context) (Result, error) {
	scan, err := im.Folder.Scan()
	if err != nil {
		return Result{}, err
	}
	applied, err := im.State.Applied()
	if err != nil {
		return Result{}, err
	}
	return im.ImportScanned(ctx, scan, applied)
}

// ImportScanned applies every file of scan that can be applied; applied is
// how far each device's files are applied here (Applied), and is advanced
// as files go in, so the caller can go on with it.
func (im *Importer) ImportScanned(ctx context.Context, scan *folder.Scan, applied map[string]uint64) (Result, error) {
	var res Result
	log := im.log()
	for _, c := range scan.Conflicts {
		log.Error("sync tool conflict copy of a rowdrop file: rowdrop files are written once by one device, so two installations may share a device identity; the copy is kept, not applied", "file", c)
		if err := im.record(c, "", 0, StatusBroken, "conflict copy made by the sync tool: possible duplicate device identity"); err != nil {
			return res, err
		}
	}
	devs := make([]string, 0, len(scan.Files))
	total := 0
	for d, l := range scan.Files {
		if d == im.Self.Device {
			continue
		}
		devs = append(devs, d)
		for _, e := range l {
			if e.Seq > applied[d] {
				total++
			}
		}
	}
	sort.Strings(devs)
	im.applied, im.scan, im.files = applied, scan, scan.Files
	defer func() { im.applied, im.scan, im.acks, im.files, im.pending, im.retired = nil, nil, nil, nil, nil, nil }()
	retired, err := im.State.Forgotten()
	if err != nil {
		return res, err
	}
	im.retired = map[string]bool{}
	for _, d := range retired {
		im.retired[d] = true
	}
	if err := im.verifyApplied(scan, applied, &res); err != nil {
		return res, err
	}
	// Held table parts whose table takes them now go in first: before the
	// later files of their device that touch the same table.
	if err := im.releaseHeld(ctx, &res); err != nil {
		return res, err
	}
	done := 0
	// Rounds: a file that waits for another device's file (causal order,
	// see Causal) may become applicable once that device's files went in.
	stopped := map[string]bool{} // devices stopped for this run (status recorded)
	causal := map[string]bool{}  // devices waiting on causal order at the end
	for progress := true; progress; {
		progress = false
		for _, dev := range devs {
			if stopped[dev] {
				continue
			}
			delete(causal, dev)
			for _, e := range scan.Files[dev] {
				next := applied[dev] + 1
				if e.Seq < next {
					continue
				}
				if err := ctx.Err(); err != nil {
					return res, err
				}
				if e.Seq > next {
					stopped[dev] = true
					if im.retired[dev] {
						break // retired here: nothing of it is waited for
					}
					res.Waiting++
					if err := im.record(rdfile.RelPath(dev, next), dev, next, StatusWaiting,
						fmt.Sprintf("file %d of device %s has not arrived; its later files (from %d) wait for it. If it is still on its way this resolves by itself; if it was deleted from the folder, this device can only catch up from a snapshot that includes it: run `rowdrop snapshot` on a device that is up to date, let the folder sync, then sync here", next, dev, e.Seq)); err != nil {
						return res, err
					}
					break
				}
				st, reason, err := im.applyOne(ctx, e, &res)
				if err != nil {
					return res, err
				}
				if st == statusCausal {
					causal[dev] = true
					if err := im.record(e.Rel, dev, e.Seq, StatusWaiting, reason); err != nil {
						return res, err
					}
					break
				}
				if st != "" && im.retired[dev] {
					stopped[dev] = true // retired here: nothing of it is waited for
					break
				}
				if st != "" {
					switch st {
					case StatusWaiting:
						res.Waiting++
					case StatusHeld:
						res.Held++
					case StatusBroken:
						res.Broken++
					}
					stopped[dev] = true
					if err := im.record(e.Rel, dev, e.Seq, st, reason); err != nil {
						return res, err
					}
					log.Warn("file not applied", "file", e.Rel, "status", st, "reason", reason)
					break // later files of this device wait; other devices go on
				}
				if err := im.State.ClearFileStatus(e.Rel); err != nil {
					return res, err
				}
				res.Applied++
				applied[dev] = e.Seq
				progress = true
				done++
				if im.Progress != nil {
					im.Progress(done, total, e.Rel)
				}
			}
		}
	}
	for dev := range causal {
		if im.retired[dev] {
			delete(causal, dev)
		}
	}
	res.Waiting += len(causal)
	if res.TablesHeld, err = im.tablesHeld(); err != nil {
		return res, err
	}
	res.Held += res.TablesHeld
	if err := im.mergeSplits(ctx, scan, applied, &res); err != nil {
		return res, err
	}
	return res, nil
}

// statusCausal: the file needs another device's file applied first; it is
// retried within the same import (recorded as waiting if it stays so).
const statusCausal = "causal"

// applyOne validates and applies one file. A non-empty status means it was
// not applied (and why); err is reserved for local failures that should
// stop the whole import (disk, database).
func (im *Importer) applyOne(ctx context.Context, e folder.Entry, res *Result) (status, reason string, err error) {
	f, err := im.Folder.Open(e.Rel)
	if err != nil {
		return classify(err), err.Error(), nil
	}
	h := f.Header
	if h.Kind != rdfile.KindChangeset {
		return StatusBroken, fmt.Sprintf("%s: header says kind %q under a changeset name: refused", e.Rel, h.Kind), nil
	}
	if h.Device != e.Device || h.Seq != e.Seq {
		return StatusBroken, fmt.Sprintf("%s: header says device %s seq %d, its name says %s/%d: refused", e.Rel, h.Device, h.Seq, e.Device, e.Seq), nil
	}
	if reason, err := im.checkChain(e, f); err != nil || reason != "" {
		return StatusBroken, reason, err
	}
	if im.Causal {
		for _, d := range sortedKeys(h.Seen) {
			if d == h.Device || d == im.Self.Device || im.applied[d] >= h.Seen[d] {
				continue
			}
			return statusCausal, fmt.Sprintf("%s: written after file %d of device %s, which is not applied here yet; it waits for it (re-keying INTEGER ids needs files in causal order)", e.Rel, h.Seen[d], d), nil
		}
	}
	// A writer whose clock ran ahead and was set right: its files
	// stamped ahead are read just below its next one (docs/MERGE.md).
	h.HLC = uint64(im.effectiveHLC(h))
	if far, ahead := im.Clock.TooFarAhead(hlc.Timestamp(h.HLC)); far {
		return StatusHeld, fmt.Sprintf("%s: its clock is %s ahead of this device's (more than %s): held until this device's time catches up, or fix the clock of device %s (%s)",
			e.Rel, ahead.Round(time.Second), hlc.MaxDrift, h.Device, h.DeviceName), nil
	}
	skip, parts, reason := im.tableParts(e, h)
	if reason != "" {
		return StatusHeld, e.Rel + ": " + reason, nil
	}
	if err := f.Verify(); err != nil {
		return classify(err), err.Error(), nil
	}
	// A held part outlives the file's collection in this device's copy,
	// on disk before the commit that records the file applied.
	var held *state.HeldCopy
	if len(parts) > 0 {
		c, reason, err := im.copyHeld(e.Rel, f)
		if err != nil || reason != "" {
			return StatusWaiting, reason, err
		}
		held = &c
	}
	finish := func() error {
		im.Clock.Observe(hlc.Timestamp(h.HLC))
		if err := im.State.MarkApplied(state.AppliedFiles{Dev: h.Device, Name: h.DeviceName, Seq: h.Seq, HLC: hlc.Timestamp(h.HLC),
			AtMS: im.now().UnixMilli(), Seen: h.Seen}); err != nil {
			return err
		}
		if err := im.State.RecordSum(state.FileSum{Dev: h.Device, Seq: h.Seq, Sum: f.Sum(), Size: e.Bytes, MtimeNS: e.ModNS}); err != nil {
			return err
		}
		// The parts kept out go in with the file's applied record: one
		// never stands without the other.
		for _, p := range parts {
			if err := im.State.HoldPart(p); err != nil {
				return err
			}
		}
		if held != nil {
			if err := im.State.RecordHeldCopy(*held); err != nil {
				return err
			}
		}
		if err := im.State.Set(state.KeyHLC, strconv.FormatUint(uint64(im.Clock.Last()), 10)); err != nil {
			return err
		}
		if err := im.State.Set(state.KeyLastImport, im.now().UnixMilli()); err != nil {
			return err
		}
		return im.State.EndInflight()
	}
	status, reason, err = im.mergeFile(ctx, e, f, h, skip, e.Rel, finish, res)
	if status == "" && err == nil {
		im.notePending(parts)
	}
	return status, reason, err
}

// mergeFile merges file f (header h, its clock already settled) into live
// and base, leaving out the changes of the tables in skip; name is the
// in-flight marker's (the file's path, or a held part's), and finish runs
// in the base commit. A non-empty status means nothing was applied.
func (im *Importer) mergeFile(ctx context.Context, e folder.Entry, f *rdfile.File, h rdfile.Header, skip map[string]bool, name string, finish func() error, res *Result) (status, reason string, err error) {
	// Validate the whole payload before touching any database: bad input
	// never reaches it.
	fileOrder, err := im.Engine.FileOrderTables()
	if err != nil {
		return "", "", err
	}
	sc, reason := im.stage(f, fileOrder, skip)
	if reason != "" {
		return StatusBroken, e.Rel + ": " + reason, nil
	}
	if sc != nil {
		defer sc.Close()
	}
	// A re-run of a merge cut short after live commits: the journal says
	// which INTEGER-key inserts it wrote to live (state/inflight.go).
	prev, err := im.State.CurrentInflight()
	if err != nil {
		return "", "", err
	}
	var recovered map[string]bool
	if prev.Kind == state.InflightChangeset && prev.Name == name {
		j, err := im.State.InflightWritten(name)
		if err != nil {
			return "", "", err
		}
		if j != nil {
			if recovered, err = im.settlePending(j); err != nil {
				return "", "", err
			}
		}
	}
	if recovered == nil {
		if err := im.State.StartInflightKeys(name); err != nil {
			return "", "", err
		}
	}
	im.Engine.Journal, im.Engine.Recovered = true, recovered
	defer func() { im.Engine.Journal, im.Engine.Recovered = false, nil }()
	if err := im.State.BeginInflight(state.Inflight{Kind: state.InflightChangeset, Name: name}); err != nil {
		return "", "", err
	}
	src := merge.Source{Device: h.Device, Clock: state.Clock{HLC: hlc.Timestamp(h.HLC), Dev: h.Device}, File: e.Rel, Seq: h.Seq, Seen: h.Seen}
	var changes merge.ChangeReader = sc // key order, skipped tables already left out
	if sc == nil {
		cs, err := f.Changeset()
		if err != nil {
			return classify(err), err.Error(), nil
		}
		defer cs.Close()
		changes = &filterReader{r: changeset.NewReader(cs, changeset.Limits{MaxValueBytes: f.Limits().ValueLimit()}), skip: skip} // the reader buffers (64 KiB) itself
	}
	st, err := im.Engine.Apply(ctx, src, changes, finish)
	res.Changes += st.Changes
	res.Conflicts += st.Conflicts
	res.Corrected += st.Corrected
	res.AddLocks(st)
	if err != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		if db.MaybeFull(err) {
			// A local failure (a full disk, most often), not the file's:
			// the import stops; the in-flight marker finishes it later.
			return "", "", fmt.Errorf("apply %s: %w", e.Rel, err)
		}
		if st.LiveCommits == 0 {
			// Held with live untouched: nothing to finish, and this
			// device's exports need not wait for it.
			if err := im.State.EndInflight(); err != nil {
				return "", "", err
			}
		}
		return StatusHeld, heldReason(e.Rel, err, im.Engine.Live), nil
	}
	if err := im.State.ClearInflightKeys(); err != nil {
		im.log().Warn("in-flight journal not removed (it is replaced by the next import's)", "err", err)
	}
	return "", "", nil
}

// effectiveHLC is the clock file h is applied with: its own, unless it
// is ahead of this device's wall clock and a later file of its device
// (the next ones, consecutively, in the folder) carries a lower clock: the
// writer's clock was set back, and hlc.Restamp places the files stamped
// ahead just below it, as the writer itself does (state.RestampAhead).
// Only a file from the future is looked at, so the headers of the files
// after it are read only then.
func (im *Importer) effectiveHLC(h rdfile.Header) hlc.Timestamp {
	own := hlc.Timestamp(h.HLC)
	if far, _ := im.Clock.TooFarAhead(own); !far {
		return own
	}
	stamps := []hlc.Timestamp{own}
	next := uint64(h.Seq) + 1
	for _, e := range im.files[h.Device] {
		if e.Seq < next {
			continue
		}
		if e.Seq > next || len(stamps) > maxRestampRun {
			break
		}
		f, err := im.Folder.Open(e.Rel)
		if err != nil || f.Header.Device != h.Device || f.Header.Seq != e.Seq {
			break
		}
		ts := hlc.Timestamp(f.Header.HLC)
		if ts < stamps[len(stamps)-1] {
			return hlc.Restamp(stamps, ts)[0]
		}
		stamps = append(stamps, ts)
		next++
	}
	return own
}

// maxRestampRun bounds how many files after a file from the future are
// read looking for the writer's clock set back.
const maxRestampRun = 10000

// filterReader drops changes to tables this device deliberately does not
// sync (partial sync).
type filterReader struct {
	r    *changeset.Reader
	skip map[string]bool
}

func (f *filterReader) Next() (*changeset.Change, error) {
	for {
		c, err := f.r.Next()
		if err != nil {
			return nil, err
		}
		if !f.skip[c.Table.Name] {
			return c, nil
		}
	}
}

func classify(err error) string {
	switch {
	case errors.Is(err, rdfile.ErrIncomplete):
		return StatusWaiting
	case errors.Is(err, rdfile.ErrTooNew):
		return StatusHeld
	default:
		return StatusBroken
	}
}

func heldReason(rel string, err error, live *sqlite.Conn) string {
	msg := err.Error()
	var refused *merge.RefusedError
	switch {
	case errors.As(err, &refused):
		return fmt.Sprintf("%s: %v; held, and the files after it from the same device wait behind it", rel, refused)
	case strings.Contains(msg, "no such function"):
		name := after(msg, "no such function: ")
		return fmt.Sprintf("%s: applying it runs app trigger(s) %s calling SQL function %s, which only the app defines; configure a stand-in (stand_ins: {%s: %s}) or exclude the table carrying the trigger; held, nothing applied",
			rel, triggersMentioning(live, name), name, name, standInKind(live, name))
	case strings.Contains(msg, "wrong number of arguments to function "):
		name, _, _ := strings.Cut(after(msg, "wrong number of arguments to function "), "(")
		return fmt.Sprintf("%s: applying it runs app trigger(s) %s calling SQL function %s with arguments its stand-in cannot take; a function called without arguments that makes a value (like uuid4()) needs stand_ins: {%s: uuid}; held, nothing applied",
			rel, triggersMentioning(live, name), name, name)
	case strings.Contains(msg, "no such module"):
		mod := after(msg, "no such module: ")
		return fmt.Sprintf("%s: applying it runs app trigger(s) %s writing into a virtual table of module %s, which this SQLite lacks; exclude the table carrying the trigger (its index is then rebuilt by the app only); held, nothing applied",
			rel, triggersMentioning(live, mod), mod)
	case strings.Contains(msg, "constraint failed"):
		return fmt.Sprintf("%s: a constraint of the local database refused a change (%s); held", rel, msg)
	}
	return fmt.Sprintf("%s: could not be applied: %s; held and retried", rel, msg)
}

// standInKind is the stand-in to advise for function name: uuid when a
// trigger calls it without arguments (it makes a value, like uuid4()),
// else identity.
func standInKind(conn *sqlite.Conn, name string) string {
	kind := "identity"
	if conn == nil || name == "?" {
		return kind
	}
	call := regexp.MustCompile(`(?i)\b` + regexp.QuoteMeta(name) + `\s*\(\s*\)`)
	// A failed read leaves the advice at identity; the held reason names
	// the triggers (or that they could not be read) either way.
	err := sqlitex.Execute(conn, "SELECT sql FROM main.sqlite_master WHERE type='trigger' AND instr(lower(sql), lower(?)) > 0",
		&sqlitex.ExecOptions{Args: []any{name}, ResultFunc: func(s *sqlite.Stmt) error {
			if call.MatchString(s.ColumnText(0)) {
				kind = "uuid"
			}
			return nil
		}})
	if err != nil {
		return "identity"
	}
	return kind
}

// after returns the word following prefix in msg.
func after(msg, prefix string) string {
	_, rest, ok := strings.Cut(msg, prefix)
	if !ok {
		return "?"
	}
	if f := strings.FieldsFunc(rest, func(r rune) bool { return r == ' ' || r == ')' || r == ';' || r == ',' || r == '"' }); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// triggersMentioning names the triggers whose SQL mentions word, or the
// virtual tables using module word ("trigger on table").
func triggersMentioning(conn *sqlite.Conn, word string) string {
	if conn == nil || word == "?" {
		return "(unknown)"
	}
	targets := []string{word}
	unreadable := func(err error) string {
		return "(unknown: the live schema could not be read: " + err.Error() + ")"
	}
	if err := sqlitex.Execute(conn, "SELECT name FROM main.sqlite_master WHERE type='table' AND sql LIKE 'CREATE VIRTUAL TABLE%USING '||?||'%'",
		&sqlitex.ExecOptions{Args: []any{word}, ResultFunc: func(s *sqlite.Stmt) error { targets = append(targets, s.ColumnText(0)); return nil }}); err != nil {
		return unreadable(err)
	}
	var names []string
	for _, w := range targets {
		err := sqlitex.Execute(conn, "SELECT name, tbl_name FROM main.sqlite_master WHERE type='trigger' AND instr(lower(sql), lower(?)) > 0",
			&sqlitex.ExecOptions{Args: []any{w}, ResultFunc: func(s *sqlite.Stmt) error {
				n := fmt.Sprintf("%s (on %s)", s.ColumnText(0), s.ColumnText(1))
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
				return nil
			}})
		if err != nil {
			return unreadable(err)
		}
	}
	if len(names) == 0 {
		return "(unknown)"
	}
	return strings.Join(names, ", ")
}

func (im *Importer) record(rel, dev string, seq uint64, status, reason string) error {
	return im.State.RecordFileStatus(rel, dev, seq, status, reason, im.now().UnixMilli())
}
