package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
)

// demoSchema is a notes database shaped like a real knowledge-base app's:
// random UUID keys, an FTS5 external-content index kept by triggers, a
// trigger that stamps updated_at on every edit, tags in a link table, and a
// device-local table of UI state.
//
// The updated_at trigger has no WHEN guard on purpose: it is the kind that
// fires on every update, including the ones rowdrop applies while merging,
// and so would echo every merge back as a new local edit. rowdrop puts back
// the cells an app trigger changed during a merge, so it converges anyway.
const demoSchema = `
PRAGMA journal_mode=WAL;
CREATE TABLE notes(
  id         TEXT PRIMARY KEY,            -- a UUID, made by the app
  title      TEXT NOT NULL DEFAULT '',
  body       TEXT NOT NULL DEFAULT '',
  notebook   TEXT NOT NULL DEFAULT 'inbox',
  pinned     INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,            -- unix ms
  updated_at INTEGER NOT NULL             -- unix ms, kept by a trigger
);
CREATE TABLE note_tags(
  note_id TEXT NOT NULL,
  tag     TEXT NOT NULL,
  PRIMARY KEY(note_id, tag)
) WITHOUT ROWID;
CREATE TABLE app_state(key TEXT PRIMARY KEY, value TEXT); -- window layout: stays on each device
CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, content='notes', content_rowid='rowid');
CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
  INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
  INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
END;
CREATE TRIGGER notes_au AFTER UPDATE ON notes BEGIN
  INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
  INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER notes_touch AFTER UPDATE ON notes %s BEGIN
  UPDATE notes SET updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) WHERE id = new.id;
END;
`

// touchGuards are the two shapes of updated_at trigger apps ship.
var touchGuards = map[string]string{
	"always": "",
	"when":   "WHEN new.updated_at IS old.updated_at",
}

// demoDevice is one simulated device: its own database (written through
// the "app's" connection), its own state directory, one shared folder.
type demoDevice struct {
	name  string
	db    string
	state string
	app   *sqlite.Conn
	s     *rowdrop.Syncer
}

// demo holds the whole simulation and its output.
type demo struct {
	w      io.Writer
	root   string
	folder string
	devs   []*demoDevice
	names  map[string]string // device id -> name
	ids    map[string]string // note title (as seeded) -> uuid
}

// newDemoCmd is `rowdrop demo`, the self-contained demonstration.
func newDemoCmd(a *app) *cobra.Command {
	var keep bool
	var touch string
	cmd := &cobra.Command{
		Use:   "demo [--keep] [--touch always|when] [-v]",
		Short: "three simulated devices sync a notes database (needs nothing else)",
		Long: `Three simulated devices, each with its own notes database and state directory,
share one temporary folder: they edit, sync, conflict and converge, and the demo
prints what happens at each step. It needs nothing but this binary. --keep keeps
the temporary directory to look around with status and conflicts.`,
		Example: `  rowdrop demo
  rowdrop demo --keep
  rowdrop demo --touch when -v`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q (demo builds its own databases; it takes --keep, --touch, -v)", args[0])
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.demo(ctx, keep, touch)
		}),
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (databases, state, shared folder) to look around")
	cmd.Flags().StringVar(&touch, "touch", "always", "shape of the app's updated_at trigger: `always` fires on every update, `when` only if updated_at was not set")
	_ = cmd.RegisterFlagCompletionFunc("touch", cobra.FixedCompletions([]string{"always", "when"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// demo runs the demonstration.
func (a *app) demo(ctx context.Context, keep bool, touch string) error {
	guard, ok := touchGuards[touch]
	if !ok {
		return usagef("--touch %q: use always or when", touch)
	}
	// The library's routine logs would drown the story; -v brings them back.
	log := a.log
	if !a.opts.verbose {
		log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	start := time.Now()
	root, err := os.MkdirTemp("", "rowdrop-demo-")
	if err != nil {
		return fmt.Errorf("create the demo's temporary directory: %w (is $TMPDIR writable?)", err)
	}
	d := &demo{w: a.stdout, root: root, folder: filepath.Join(root, "shared"), names: map[string]string{}, ids: map[string]string{}}
	defer func() {
		d.close()
		if keep {
			if len(d.devs) > 0 {
				flags := fmt.Sprintf("--db %s --folder %s --state %s --exclude app_state", d.devs[0].db, d.folder, d.devs[0].state)
				fmt.Fprintf(d.w, "\nkept %s; try:\n  rowdrop status %s\n  rowdrop conflicts %s\n", root, flags, flags)
			} else {
				fmt.Fprintf(d.w, "\nkept %s\n", root)
			}
			return
		}
		os.RemoveAll(root)
	}()
	if err := d.run(ctx, log, guard); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "\ndemo finished in %s", time.Since(start).Round(10*time.Millisecond))
	if !keep {
		fmt.Fprint(d.w, " (temporary files removed; --keep keeps them)")
	}
	fmt.Fprintln(d.w)
	return nil
}

func (d *demo) printf(format string, a ...any) { fmt.Fprintf(d.w, format, a...) }

func (d *demo) close() {
	for _, dev := range d.devs {
		if dev.s != nil {
			dev.s.Close()
		}
		if dev.app != nil {
			dev.app.Close()
		}
	}
}

func (d *demo) dev(name string) *demoDevice {
	for _, dev := range d.devs {
		if dev.name == name {
			return dev
		}
	}
	panic("no demo device " + name)
}

// newUUID returns a random (version 4) UUID, as the app would make.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// exec runs SQL through the app's connection: its triggers fire, as they
// would in the app.
func (dev *demoDevice) exec(q string, args ...any) error {
	if err := sqlitex.Execute(dev.app, q, &sqlitex.ExecOptions{Args: args}); err != nil {
		return fmt.Errorf("demo: %s: %s: %w", dev.name, q, err)
	}
	return nil
}

func (d *demo) run(ctx context.Context, log *slog.Logger, guard string) error {
	d.printf("rowdrop demo: three devices share a notes database through one folder.\n")
	d.printf("Nothing but the folder is shared; the database files themselves are never copied.\n\n")
	d.printf("  workspace  %s\n", d.root)
	d.printf("  shared     %s   (what Syncthing, Dropbox or a USB stick would carry)\n", d.folder)
	if err := os.MkdirAll(d.folder, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"laptop", "desktop", "usb-box"} {
		dir := filepath.Join(d.root, name)
		dev := &demoDevice{name: name, db: filepath.Join(dir, "notes.db"), state: filepath.Join(dir, "state")}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		app, err := sqlite.OpenConn(dev.db)
		if err != nil {
			return fmt.Errorf("demo: create %s: %w", dev.db, err)
		}
		dev.app = app
		d.devs = append(d.devs, dev)
		if err := sqlitex.ExecuteScript(app, fmt.Sprintf(demoSchema, guard), nil); err != nil {
			return fmt.Errorf("demo: schema on %s: %w", name, err)
		}
		s, err := rowdrop.Open(ctx, rowdrop.Config{DB: dev.db, Folder: d.folder, State: dev.state, DeviceName: name,
			Exclude: []string{"app_state"}, Logger: log.With("device", name)})
		if err != nil {
			return err
		}
		dev.s = s
		d.names[s.Identity().Device] = name
		d.printf("  %-8s   %s  (device id %s)\n", name, dev.db, s.Identity().Device)
	}
	d.printf("\nThe app's tables: notes (UUID keys), note_tags, app_state (kept per device: excluded),\n")
	d.printf("an FTS5 search index notes_fts kept by triggers, and a trigger stamping updated_at.\n")

	// 1. Seed.
	d.section("1. the laptop writes five notes; every device syncs")
	laptop, desktop, usb := d.dev("laptop"), d.dev("desktop"), d.dev("usb-box")
	seed := []struct{ title, body, notebook, tags string }{
		{"Groceries", "milk, eggs, bread, coffee beans", "home", "home,weekly"},
		{"Trip to Lisbon", "book flights; pastel de nata in Belem; tram 28", "travel", "travel"},
		{"Old ideas", "a bicycle-powered blender", "ideas", "ideas"},
		{"Reading list", "Designing Data-Intensive Applications", "books", "books"},
		{"Meeting notes", "sync design review: every cell keeps its latest edit", "work", "work"},
	}
	now := time.Now().UnixMilli()
	for i, n := range seed {
		id := newUUID()
		d.ids[n.title] = id
		if err := laptop.exec("INSERT INTO notes(id,title,body,notebook,created_at,updated_at) VALUES(?,?,?,?,?,?)",
			id, n.title, n.body, n.notebook, now+int64(i), now+int64(i)); err != nil {
			return err
		}
		for _, tag := range strings.Split(n.tags, ",") {
			if err := laptop.exec("INSERT INTO note_tags(note_id,tag) VALUES(?,?)", id, tag); err != nil {
				return err
			}
		}
	}
	for _, dev := range d.devs {
		if err := dev.exec("INSERT INTO app_state(key,value) VALUES('window', ?)", dev.name+" layout"); err != nil {
			return err
		}
	}
	if err := d.round(ctx, laptop, desktop, usb); err != nil {
		return err
	}

	// 2. Offline edits.
	d.section("2. offline: each device edits without syncing")
	edits := []struct {
		dev  *demoDevice
		what string
		q    string
		args []any
	}{
		{laptop, `title of "Groceries" -> "Groceries for the weekend"`, "UPDATE notes SET title=? WHERE id=?", []any{"Groceries for the weekend", d.ids["Groceries"]}},
		{laptop, `body of "Old ideas" gets one more idea`, "UPDATE notes SET body=body||?  WHERE id=?", []any{"; a solar kettle", d.ids["Old ideas"]}},
		{laptop, `body of "Trip to Lisbon" gets a line`, "UPDATE notes SET body=body||? WHERE id=?", []any{"; visit the Alfama", d.ids["Trip to Lisbon"]}},
		{desktop, `title of "Groceries" -> "Shopping list"   (same field as the laptop: a conflict)`, "UPDATE notes SET title=? WHERE id=?", []any{"Shopping list", d.ids["Groceries"]}},
		{desktop, `pins "Trip to Lisbon"   (another column of the note the laptop edited)`, "UPDATE notes SET pinned=1 WHERE id=?", []any{d.ids["Trip to Lisbon"]}},
		{desktop, `tags "Reading list" as "2025"`, "INSERT INTO note_tags(note_id,tag) VALUES(?, '2025')", []any{d.ids["Reading list"]}},
		{usb, `deletes "Old ideas"   (which the laptop is editing: delete vs edit)`, "DELETE FROM notes WHERE id=?", []any{d.ids["Old ideas"]}},
		{usb, `deletes the tags of "Old ideas"`, "DELETE FROM note_tags WHERE note_id=?", []any{d.ids["Old ideas"]}},
		{usb, `writes a new note "Ferry times"`, "INSERT INTO notes(id,title,body,notebook,created_at,updated_at) VALUES(?,?,?,?,?,?)",
			[]any{newUUID(), "Ferry times", "Cais do Sodre to Cacilhas every 20 minutes; Lisbon", "travel", time.Now().UnixMilli(), time.Now().UnixMilli()}},
	}
	for _, e := range edits {
		if err := e.dev.exec(e.q, e.args...); err != nil {
			return err
		}
		d.printf("  %-8s %s\n", e.dev.name, e.what)
		// Edits are stamped when they are exported, but keep the story's
		// order in the app's updated_at too.
		time.Sleep(2 * time.Millisecond)
	}

	// 3-4. Sync rounds.
	d.section("3. sync round 1: laptop, desktop, usb-box (in that order: later exports win same-cell races)")
	if err := d.round(ctx, laptop, desktop, usb); err != nil {
		return err
	}
	d.section("4. sync round 2: everyone sees everyone's files")
	if err := d.round(ctx, laptop, desktop, usb); err != nil {
		return err
	}

	// 5. Conflict logs.
	d.section("5. the conflict logs: every value that lost a merge, restorable")
	var restoreID string
	for _, dev := range d.devs {
		cs, err := dev.s.Conflicts()
		if err != nil {
			return err
		}
		d.printf("  %s: %d entr%s\n", dev.name, len(cs), plural(len(cs), "y", "ies"))
		for _, c := range cs {
			d.printConflict(c)
			if dev == laptop && c.Table == "notes" && c.Loser != nil && strings.Contains(c.Loser["body"], "solar kettle") && len(c.Columns) > 1 {
				restoreID = c.ID
			}
		}
	}

	// 6. Restore the lost edit, to show nothing is silently lost.
	if restoreID != "" {
		d.section(fmt.Sprintf("6. the laptop brings back \"Old ideas\" with its edit: `rowdrop conflicts restore %s`", restoreID))
		if err := laptop.s.RestoreConflict(ctx, restoreID); err != nil {
			return err
		}
		if err := laptop.exec("INSERT OR IGNORE INTO note_tags(note_id,tag) VALUES(?, 'ideas')", d.ids["Old ideas"]); err != nil {
			return err
		}
		d.printf("  laptop   restored the row as a local edit (and re-tagged it in the app); one more round:\n")
		if err := d.round(ctx, laptop, desktop, usb, laptop); err != nil {
			return err
		}
	}

	// 7. Final state, compared.
	d.section("7. final state")
	return d.final()
}

// printConflict shows one entry compactly: which note, what was kept and
// what lost, by whom.
func (d *demo) printConflict(c *rowdrop.Conflict) {
	key := strings.Trim(c.Key, "'")
	what := c.Table + " " + key
	if c.Table == "notes" {
		what = "note " + key[:min(8, len(key))]
		for title, id := range d.ids {
			if id == key {
				what += fmt.Sprintf(" (%q)", title)
			}
		}
	}
	cols := c.Columns
	if len(cols) > 2 {
		cols = []string{"whole row"}
	}
	d.printf("    %s %s, %s: %s — %s\n", c.ID, what, strings.Join(cols, ", "), c.Kind, kindText[c.Kind])
	show := func(m map[string]string) string {
		if m == nil {
			return "(no row)"
		}
		var parts []string
		for _, col := range c.Columns {
			if v, ok := m[col]; ok && col != "id" && col != "created_at" {
				if ms, err := strconv.ParseInt(v, 10, 64); err == nil && col == "updated_at" {
					v = time.UnixMilli(ms).Format("15:04:05.000")
				}
				parts = append(parts, col+"="+shorten(v, 48))
			}
		}
		return strings.Join(parts, ", ")
	}
	d.printf("         kept %s  (%s)\n", show(c.Winner), d.names[c.WinnerBy])
	d.printf("         lost %s  (%s)\n", show(c.Loser), d.names[c.LoserBy])
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix) + "\n"
}

func (d *demo) section(title string) { d.printf("\n== %s\n", title) }

// round syncs the given devices in order and says what each did.
func (d *demo) round(ctx context.Context, order ...*demoDevice) error {
	for _, dev := range order {
		// Distinct export times keep "later wins" visible in the story.
		time.Sleep(3 * time.Millisecond)
		before, err := dev.s.Status(ctx)
		if err != nil {
			return err
		}
		r, err := dev.s.Sync(ctx)
		if err != nil {
			return fmt.Errorf("demo: sync %s: %w", dev.name, err)
		}
		after, err := dev.s.Status(ctx)
		if err != nil {
			return err
		}
		var parts []string
		if r.Export.Seq > 0 {
			rel, _ := filepath.Rel(d.folder, r.Export.File)
			parts = append(parts, fmt.Sprintf("published %s (%d change%s, %d bytes)", rel, r.Export.Changes, plural(int(r.Export.Changes), "", "s"), r.Export.Bytes))
		} else {
			parts = append(parts, "nothing new to publish")
		}
		was := map[string]uint64{}
		for _, x := range before.Devices {
			was[x.ID] = x.Applied
		}
		var got []string
		for _, x := range after.Devices {
			if x.Applied > was[x.ID] {
				span := fmt.Sprintf("#%d", x.Applied)
				if x.Applied > was[x.ID]+1 {
					span = fmt.Sprintf("#%d-#%d", was[x.ID]+1, x.Applied)
				}
				got = append(got, d.names[x.ID]+" "+span)
			}
		}
		sort.Strings(got)
		if len(got) > 0 {
			s := fmt.Sprintf("merged %s: %d change%s", strings.Join(got, ", "), r.Import.Changes, plural(int(r.Import.Changes), "", "s"))
			if r.Import.Conflicts > 0 {
				s += fmt.Sprintf(", %d conflict%s logged", r.Import.Conflicts, plural(int(r.Import.Conflicts), "", "s"))
			}
			if r.Import.Corrected > 0 {
				s += fmt.Sprintf(", %d cell%s the app's triggers changed put back", r.Import.Corrected, plural(int(r.Import.Corrected), "", "s"))
			}
			parts = append(parts, s)
		} else {
			parts = append(parts, "nothing new to merge")
		}
		if n := r.Import.Waiting + r.Import.Held + r.Import.Broken; n > 0 {
			parts = append(parts, fmt.Sprintf("%d file(s) not applied", n))
		}
		d.printf("  %-8s %s\n", dev.name, strings.Join(parts, "; "))
	}
	return nil
}

// snapshot is what must be identical across devices.
type snapshot struct {
	dump  string     // every synced row, every column, with SQL types
	notes [][]string // for the table shown to people
	fts   map[string][]string
}

var ftsQueries = []string{"lisbon", "alfama", "shopping", "kettle"}

func (dev *demoDevice) snapshot() (*snapshot, error) {
	s := &snapshot{fts: map[string][]string{}}
	var b strings.Builder
	q := func(query string, args []any, f func(st *sqlite.Stmt)) error {
		return sqlitex.Execute(dev.app, query, &sqlitex.ExecOptions{Args: args, ResultFunc: func(st *sqlite.Stmt) error {
			f(st)
			return nil
		}})
	}
	err := q(`SELECT quote(id), quote(title), quote(body), quote(notebook), quote(pinned), quote(created_at), quote(updated_at),
		id, title, body, notebook, pinned, updated_at,
		(SELECT group_concat(tag, ',') FROM (SELECT tag FROM note_tags WHERE note_id = notes.id ORDER BY tag))
		FROM notes ORDER BY title, id`, nil, func(st *sqlite.Stmt) {
		for i := 0; i < 7; i++ {
			b.WriteString(st.ColumnText(i) + "|")
		}
		b.WriteString("\n")
		pinned := ""
		if st.ColumnInt(11) != 0 {
			pinned = "yes"
		}
		s.notes = append(s.notes, []string{st.ColumnText(7)[:8], st.ColumnText(8), shorten(st.ColumnText(9), 40), st.ColumnText(10), pinned, st.ColumnText(13),
			time.UnixMilli(st.ColumnInt64(12)).Format("15:04:05.000")})
	})
	if err != nil {
		return nil, err
	}
	if err := q("SELECT quote(note_id), quote(tag) FROM note_tags ORDER BY note_id, tag", nil, func(st *sqlite.Stmt) {
		b.WriteString(st.ColumnText(0) + "|" + st.ColumnText(1) + "\n")
	}); err != nil {
		return nil, err
	}
	s.dump = b.String()
	for _, term := range ftsQueries {
		s.fts[term] = []string{}
		if err := q("SELECT n.title FROM notes_fts JOIN notes n ON n.rowid = notes_fts.rowid WHERE notes_fts MATCH ? ORDER BY n.title",
			[]any{term}, func(st *sqlite.Stmt) { s.fts[term] = append(s.fts[term], st.ColumnText(0)) }); err != nil {
			return nil, fmt.Errorf("full-text search on %s: %w", dev.name, err)
		}
	}
	// FTS5's own check that the index matches the notes table.
	if err := sqlitex.ExecuteTransient(dev.app, "INSERT INTO notes_fts(notes_fts, rank) VALUES('integrity-check', 1)", nil); err != nil {
		return nil, fmt.Errorf("the search index of %s does not match its notes: %w", dev.name, err)
	}
	return s, nil
}

// final prints the converged state and checks that all devices hold it.
func (d *demo) final() error {
	snaps := make([]*snapshot, len(d.devs))
	for i, dev := range d.devs {
		s, err := dev.snapshot()
		if err != nil {
			return err
		}
		snaps[i] = s
	}
	tw := tabwriter.NewWriter(d.w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tTITLE\tBODY\tNOTEBOOK\tPINNED\tTAGS\tUPDATED")
	for _, r := range snaps[0].notes {
		fmt.Fprintf(tw, "  %s\n", strings.Join(r, "\t"))
	}
	tw.Flush()
	d.printf("\n  full-text search (FTS5 index kept by the app's triggers), on each device:\n")
	for _, term := range ftsQueries {
		for i, dev := range d.devs {
			d.printf("    %-8s MATCH %-9q -> %s\n", dev.name, term, quoteList(snaps[i].fts[term]))
		}
	}
	same := true
	for i := 1; i < len(snaps); i++ {
		if snaps[i].dump != snaps[0].dump || fmt.Sprint(snaps[i].fts) != fmt.Sprint(snaps[0].fts) {
			same = false
		}
	}
	sum := sha256.Sum256([]byte(snaps[0].dump))
	if !same {
		d.printf("\n  DEVICES DIFFER:\n")
		for i, dev := range d.devs {
			d.printf("  -- %s\n%s", dev.name, indent(snaps[i].dump, "    "))
		}
		return fmt.Errorf("demo: the devices did not converge (see the dumps above); this is a rowdrop bug, please report it")
	}
	d.printf("\n  laptop, desktop and usb-box hold identical notes and tags (every column, updated_at included;\n")
	d.printf("  sha256 %s), and each search index passes FTS5's integrity-check.\n", hex.EncodeToString(sum[:8]))
	d.printf("  app_state was not synced: each device kept its own window layout.\n")
	return nil
}

func quoteList(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
