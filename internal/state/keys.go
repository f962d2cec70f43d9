package state

import (
	"fmt"
	"strconv"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
)

// Key names a value of rowdrop_state, the state directory's key-value
// table. Every key rowdrop stores is one of the constants below.
type Key string

// The keys of rowdrop_state.
const (
	// Identity (Identity, CreateIdentity, CheckInstallation).
	KeyDevice       Key = "device"        // this device's id
	KeyName         Key = "name"          // its human name
	KeyInstall      Key = "install"       // per-installation token (NewInstall)
	KeyInstallSince Key = "install_since" // first sequence number written under the current token
	KeyHostFP       Key = "host_fp"       // machine fingerprint of the installation

	// Export.
	KeyNextSeq     Key = "next_seq"       // sequence number of this device's next changeset
	KeyBaseReady   Key = "base_ready"     // "1" once the first export committed the base copy
	KeyIDCheckUpTo Key = "idcheck_upto"   // own files up to this one checked for this installation
	KeyLastFullMS  Key = "last_full_ms"   // last full comparison of live and base
	KeyLastExport  Key = "last_export_ms" // last export that published a file
	// KeyLiveFile is what identified the live database at the last export
	// or import (JSON, LiveFile; through LiveFile and SetLiveFile).
	KeyLiveFile Key = "live_file"
	// KeyRecognition is what the last check of the live database found
	// when it was not the file last synced (JSON, Recognition).
	KeyRecognition Key = "recognition"
	// KeyMassHeld says why the last export was held by the mass-change
	// guard ("" when none is held).
	KeyMassHeld Key = "mass_held"

	// Import.
	KeyHLC         Key = "hlc"            // last clock this device issued or observed
	KeyLastImport  Key = "last_import_ms" // last file or snapshot applied
	KeyRebasedFrom Key = "rebased_from"   // the last snapshot merged
	keyInflight    Key = "inflight"       // see Inflight; only through BeginInflight and friends
	keySplit       Key = "split_merged"   // JSON list: contents of split files merged (split.go)

	// Snapshots (export.MakeSnapshot, export.SnapshotDue).
	KeySnapSeq   Key = "snap_seq"   // number of this device's last snapshot
	KeySnapTotal Key = "snap_total" // sum of its Seen vector (files it covered)
	KeySnapMS    Key = "snap_ms"    // when it was made

	// Status and collection.
	KeySchemaProblems Key = "schema_problems" // JSON: the problems the last EnsureBase found
	// KeyIdentity: JSON map table -> identity columns under which the
	// base copy's rows (and their clocks) are keyed (export.EnsureBase).
	KeyIdentity Key = "identity"
	KeyLastGCMS Key = "last_gc_ms" // last collection of the folder
)

// Value reads a state value ("" if unset).
func (d *Dir) Value(k Key) (string, error) {
	var v string
	err := sqlitex.Execute(d.conn, "SELECT v FROM rowdrop_state WHERE k=?", &sqlitex.ExecOptions{Args: []any{string(k)}, ResultFunc: func(s *sqlite.Stmt) error {
		v = s.ColumnText(0)
		return nil
	}})
	if err != nil {
		return "", fmt.Errorf("read %s from the state in %s: %w", k, d.Path, err)
	}
	return v, nil
}

// Int reads an integer state value (0 if unset).
func (d *Dir) Int(k Key) (int64, error) {
	v, err := d.Value(k)
	if err != nil || v == "" {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("state value %s in %s is %q, not a number: %w", k, d.Path, v, err)
	}
	return n, nil
}

// Set writes a state value (inside the caller's transaction if any).
func (d *Dir) Set(k Key, v any) error {
	if err := db.Exec(d.conn, "INSERT INTO rowdrop_state(k,v) VALUES(?,?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", string(k), v); err != nil {
		return fmt.Errorf("write %s to the state in %s: %w", k, d.Path, err)
	}
	return nil
}
