package scenario

import (
	"context"
	"time"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop"
)

// WithAppClosed closes the app's connection, runs fn (which may replace,
// restore or recreate the database file at d.DB, as a backup tool or a
// reinstalled app would) and opens the app's connection again, on whatever
// file then has the path. The Syncer stays open, as `rowdrop watch` would.
func (d *Device) WithAppClosed(fn func(path string)) {
	t := d.W.T
	t.Helper()
	if err := d.App.Close(); err != nil {
		t.Fatalf("%s: close app: %v", d.Name, err)
	}
	fn(d.DB)
	app, err := sqlite.OpenConn(d.DB, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatalf("%s: reopen app: %v", d.Name, err)
	}
	app.SetBusyTimeout(10 * time.Second)
	d.App = app
}

// ReopenWith closes the Syncer and opens it again with its configuration
// adjusted by adjust, for that one opening (`rowdrop sync --flag` once).
func (d *Device) ReopenWith(adjust func(*rowdrop.Config)) {
	d.W.T.Helper()
	if err := d.S.Close(); err != nil {
		d.W.T.Fatal(err)
	}
	cfg := d.cfg
	adjust(&cfg)
	s, err := rowdrop.Open(context.Background(), cfg)
	if err != nil {
		d.W.T.Fatalf("%s: open: %v", d.Name, err)
	}
	d.S = s
}
