package state

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
)

// Applied returns how far each device's files have been applied here: the
// last applied sequence number of every device recorded (0: none yet).
// A vector for a file header leaves the zeros out.
func (d *Dir) Applied() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := sqlitex.Execute(d.conn, "SELECT id, applied FROM rowdrop_devices", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out[s.ColumnText(0)] = uint64(s.ColumnInt64(1))
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("read applied files from %s: %w", d.Path, err)
	}
	return out, nil
}

// Imported reports whether any other device's file was ever applied.
func (d *Dir) Imported() (bool, error) {
	var n int
	err := sqlitex.Execute(d.conn, "SELECT count(*) FROM rowdrop_devices WHERE applied>0", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		n = s.ColumnInt(0)
		return nil
	}})
	if err != nil {
		return false, fmt.Errorf("read applied files from %s: %w", d.Path, err)
	}
	return n > 0, nil
}

// AppliedFiles says that a device's files up to Seq are now applied here.
// The source is either the device's own changeset Seq, or a snapshot that
// includes the device's files up to Seq (FromSnapshot).
type AppliedFiles struct {
	Dev  string
	Name string        // the device's name as the source gives it
	Seq  uint64        // the device's last file now applied
	HLC  hlc.Timestamp // the latest clock of the device the source carries
	AtMS int64         // when (for status)

	// Seen is a changeset's causal context (its header's Seen); with HLC
	// it goes to the file log.
	Seen map[string]uint64

	// FromSnapshot: the name only fills in an unknown one (a snapshot's
	// names are second-hand), the file log is not written (the snapshot
	// brought its own), and the file records (waiting, held) of the
	// changesets it includes are dropped as moot.
	FromSnapshot bool
}

// MarkApplied records, in the caller's transaction (the one that commits
// the merged base copy), that a device's files up to a.Seq are applied.
// How far a device is applied never goes back; its last clock is the
// latest known.
func (d *Dir) MarkApplied(a AppliedFiles) error {
	name := "excluded.name"
	if a.FromSnapshot {
		name = "CASE WHEN name='' THEN excluded.name ELSE name END"
	}
	err := db.Exec(d.conn, `INSERT INTO rowdrop_devices(id,name,applied,last_hlc,last_applied_ms) VALUES(?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET name=`+name+`, applied=max(applied, excluded.applied), last_hlc=max(last_hlc, excluded.last_hlc), last_applied_ms=excluded.last_applied_ms`,
		a.Dev, a.Name, int64(a.Seq), int64(a.HLC), a.AtMS)
	if err != nil {
		return fmt.Errorf("record that files up to %d of device %s are applied, in %s: %w", a.Seq, a.Dev, d.Path, err)
	}
	if a.FromSnapshot {
		return d.clearIncluded(a.Dev, a.Seq)
	}
	return d.RecordFile(FileInfo{Dev: a.Dev, Seq: a.Seq, HLC: a.HLC, Seen: a.Seen})
}

// Device is one row of rowdrop_devices: what this device (or a snapshot)
// knows of another.
type Device struct {
	ID            string
	Name          string
	Applied       uint64        // its last file applied (included, in a snapshot)
	LastHLC       hlc.Timestamp // the latest of its clocks seen
	LastAppliedMS int64
}

// Devices lists the devices recorded here.
func (d *Dir) Devices() ([]Device, error) {
	out, err := ReadDevices(d.conn)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.Path, err)
	}
	return out, nil
}

// ReadDevices reads rowdrop_devices on conn (the state database or a
// snapshot's).
func ReadDevices(conn *sqlite.Conn) ([]Device, error) {
	var out []Device
	err := sqlitex.ExecuteTransient(conn, "SELECT id, name, applied, last_hlc, last_applied_ms FROM rowdrop_devices", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out = append(out, Device{ID: s.ColumnText(0), Name: s.ColumnText(1), Applied: uint64(s.ColumnInt64(2)),
			LastHLC: hlc.Timestamp(s.ColumnInt64(3)), LastAppliedMS: s.ColumnInt64(4)})
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("read the devices: %w", err)
	}
	return out, nil
}

// DeviceNames returns the human names recorded for other devices (those
// with one).
func (d *Dir) DeviceNames() (map[string]string, error) {
	devs, err := d.Devices()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, v := range devs {
		if v.Name != "" {
			out[v.ID] = v.Name
		}
	}
	return out, nil
}

// LastClocks returns, per device recorded, the latest of its clocks seen
// here.
func (d *Dir) LastClocks() (map[string]hlc.Timestamp, error) {
	devs, err := d.Devices()
	if err != nil {
		return nil, err
	}
	out := map[string]hlc.Timestamp{}
	for _, v := range devs {
		out[v.ID] = v.LastHLC
	}
	return out, nil
}

// Forget records that the user retired device id (collection stops
// waiting for it); forgetting it again keeps the first time.
func (d *Dir) Forget(id string, atMS int64) error {
	if err := db.Exec(d.conn, "INSERT INTO rowdrop_forgotten(id,at_ms) VALUES(?,?) ON CONFLICT(id) DO NOTHING", id, atMS); err != nil {
		return fmt.Errorf("record the retirement of %s in %s: %w", id, d.Path, err)
	}
	// A retired identity's files are no longer waited for: nothing of
	// them is reported held or waiting any more.
	for _, q := range []string{"DELETE FROM rowdrop_files WHERE dev=?", "DELETE FROM rowdrop_held_tables WHERE dev=?"} {
		if err := db.Exec(d.conn, q, id); err != nil {
			return fmt.Errorf("clear the held files of retired device %s in %s: %w", id, d.Path, err)
		}
	}
	return nil
}

// Forgotten lists the retired devices, sorted.
func (d *Dir) Forgotten() ([]string, error) {
	out := []string{}
	err := sqlitex.Execute(d.conn, "SELECT id FROM rowdrop_forgotten ORDER BY id", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out = append(out, s.ColumnText(0))
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("read retired devices from %s: %w", d.Path, err)
	}
	return out, nil
}
