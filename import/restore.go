package importer

import (
	"context"
	"fmt"
	"os"
	"strings"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// SchemaFromSnapshots finds the app's complete schema for `rowdrop
// restore`, which builds a database from the folder alone: from the
// snapshot a new device joins from (the candidates, in Rebase's order),
// or the next one that carries a schema (format version 2). It returns
// the schema and the snapshot it came from, or nil and why none could
// give one (what is missing, what to do).
func (im *Importer) SchemaFromSnapshots(ctx context.Context, scan *folder.Scan, applied map[string]uint64) (*schema.Full, string, string, error) {
	if scan == nil || len(scan.Snapshots) == 0 {
		return nil, "", "the shared folder holds no snapshot, and only a snapshot carries the app's schema: run `rowdrop snapshot` on a device that has the database (or start the app here once, so it creates its tables, and run `rowdrop sync`)", nil
	}
	cands, err := im.candidates(scan.Snapshots, boundsOf(scan, im.Self.Device), applied)
	if err != nil {
		return nil, "", "", err
	}
	sortCandidates(cands)
	// Then the others, newest first: a resumed restore has merged its
	// snapshot already (none is a candidate any more), and when no
	// snapshot is usable but the files are all there, the newest schema
	// is the one they were written under.
	var rest []candidate
	in := map[string]bool{}
	for _, c := range cands {
		in[c.e.Rel] = true
	}
	for _, e := range scan.Snapshots {
		if !in[e.Rel] {
			if h, status, _ := im.SnapshotHeader(e); status == "" {
				rest = append(rest, candidate{e: e, h: h})
			}
		}
	}
	sortCandidates(rest)
	var why []string
	for _, c := range append(cands, rest...) {
		full, reason, err := im.snapshotSchema(ctx, c.e)
		if err != nil {
			return nil, "", "", err
		}
		if full != nil {
			return full, c.e.Rel, "", nil
		}
		why = append(why, c.e.Rel+": "+reason)
	}
	if len(why) == 0 {
		return nil, "", fmt.Sprintf("none of the %d snapshots in the shared folder is readable (see `rowdrop status`): run `rowdrop snapshot` on an up-to-date device", len(scan.Snapshots)), nil
	}
	return nil, "", "no usable snapshot carries the app's schema (" + strings.Join(why, "; ") + "): run `rowdrop snapshot` with this rowdrop version on a device that has the database", nil
}

// snapshotSchema reads the schema a snapshot carries: nil and why not
// when it is unreadable or carries none.
func (im *Importer) snapshotSchema(ctx context.Context, e folder.Entry) (*schema.Full, string, error) {
	f, err := im.Folder.Open(e.Rel)
	if err != nil {
		return nil, err.Error(), nil
	}
	if err := f.Verify(); err != nil {
		return nil, err.Error(), nil
	}
	tmp, status, reason, err := im.decompress(f, e)
	if status != "" || err != nil {
		return nil, reason, err
	}
	defer os.Remove(tmp)
	conn, err := sqlite.OpenConn(db.FileURI(tmp)+"?mode=ro&immutable=1", sqlite.OpenReadOnly|sqlite.OpenURI)
	if err != nil {
		return nil, "not a SQLite database: " + err.Error(), nil
	}
	defer conn.Close()
	defer db.Interruptible(ctx, conn)()
	full, err := state.SnapshotSchema(conn)
	if err != nil {
		return nil, err.Error(), nil
	}
	if full == nil {
		return nil, "written by an older rowdrop: it does not carry the app's schema", nil
	}
	// The statements are run on the new database: nothing but CREATE of
	// the four kinds of schema object.
	for _, o := range full.Objects {
		switch o.Type {
		case "table", "index", "trigger", "view":
		default:
			return nil, fmt.Sprintf("its schema holds an object of type %q", o.Type), nil
		}
		if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(o.SQL)), "CREATE ") {
			return nil, fmt.Sprintf("its schema entry for %s %s is not a CREATE statement", o.Type, o.Name), nil
		}
	}
	return full, "", nil
}
