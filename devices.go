package rowdrop

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rowdrop/rowdrop/internal/ack"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/gc"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/state"
)

// DefaultDeviceHorizon is how long a device may stay silent (no new
// acknowledgement, no new file) before status warns about it.
const DefaultDeviceHorizon = 30 * 24 * time.Hour

// ackHeartbeat: an unchanged acknowledgement is still rewritten this often
// while the device runs, so a running device never looks silent.
const ackHeartbeat = 12 * time.Hour

// Device statuses reported by Devices.
const (
	DeviceSelf    = "this device"
	DeviceActive  = "active"
	DeviceSilent  = "silent"  // active, but nothing new from it for longer than the horizon
	DeviceRetired = "retired" // some device's user ran `rowdrop devices forget`
)

func (s *Syncer) horizon() time.Duration {
	if s.cfg.DeviceHorizon > 0 {
		return s.cfg.DeviceHorizon
	}
	return DefaultDeviceHorizon
}

// published is this device's highest sequence number such that every file
// up to it is in the folder: files still waiting in the outbox are not.
func (s *Syncer) published() (uint64, error) {
	next, err := s.st.Int(state.KeyNextSeq)
	if err != nil || next <= 1 {
		return 0, err
	}
	p := uint64(next - 1)
	waiting, err := s.outbox()
	if err != nil {
		return 0, err
	}
	for _, seq := range waiting {
		if seq <= p {
			p = seq - 1
		}
	}
	return p, nil
}

// forgotten lists the devices this device's user retired.
func (s *Syncer) forgotten() ([]string, error) { return s.st.Forgotten() }

// deviceNames returns the human names this device has recorded.
func (s *Syncer) deviceNames() (map[string]string, error) {
	names, err := s.st.DeviceNames()
	if err != nil {
		return nil, err
	}
	if _, ok := names[s.id.Device]; !ok {
		names[s.id.Device] = s.id.Name
	}
	return names, nil
}

// currentAck is the acknowledgement this device would publish now.
// applied is how far this device has applied each device's files (nil:
// read it).
func (s *Syncer) currentAck(applied map[string]uint64) (a *ack.Ack, err error) {
	if applied == nil {
		if applied, err = s.st.Applied(); err != nil {
			return nil, err
		}
	}
	a = &ack.Ack{Device: s.id.Device, Install: s.id.Install, DeviceName: s.id.Name, WrittenMS: s.cfg.Now().UnixMilli(),
		Applied: map[string]uint64{}}
	for dev, n := range applied {
		if n > 0 && dev != s.id.Device && rdfile.ValidDeviceID(dev) {
			a.Applied[dev] = n
		}
	}
	if p, err := s.published(); err != nil {
		return nil, err
	} else if p > 0 {
		a.Applied[s.id.Device] = p
	}
	if a.Forgotten, err = s.forgotten(); err != nil {
		return nil, err
	}
	// What each acknowledged file was (the hash chain): a device that
	// later finds other content under its name reports it replaced.
	for dev, n := range a.Applied {
		sum, err := s.st.Sum(dev, n)
		if err != nil {
			return nil, err
		}
		if sum != "" {
			if a.Sums == nil {
				a.Sums = map[string]string{}
			}
			a.Sums[dev] = sum
		}
	}
	return a, nil
}

// WriteAck publishes this device's acknowledgement (<folder>/<device>/ack.json)
// if it changed, or if force, or if the last one is older than a
// heartbeat. Import calls it after every import; a collection on any
// device reads it.
func (s *Syncer) WriteAck(force bool) (bool, error) { return s.writeAck(force, nil) }

// writeAck is WriteAck with the applied vector the caller has (nil: read
// it).
func (s *Syncer) writeAck(force bool, applied map[string]uint64) (bool, error) {
	a, err := s.currentAck(applied)
	if err != nil {
		return false, fmt.Errorf("read what this device has applied from %s: %w", s.cfg.State, err)
	}
	if !force {
		old, err := s.shared.ReadAck(s.id.Device)
		if err == nil && ack.Same(old, a) && time.Duration(a.WrittenMS-old.WrittenMS)*time.Millisecond < ackHeartbeat && old.WrittenMS <= a.WrittenMS {
			return false, nil
		}
	}
	if err := s.shared.WriteAck(a); err != nil {
		return false, fmt.Errorf("write acknowledgement %s: %w (check that the shared folder is writable; until it is, other devices keep this device's old files)", s.shared.Path(folder.AckRel(s.id.Device)), err)
	}
	return true, nil
}

// DeviceInfo is one device as this device sees it.
type DeviceInfo struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Status string `json:"status"` // this device, active, silent, retired
	// RetiredBy names who retired it ("this device" or device ids).
	RetiredBy []string `json:"retired_by,omitempty"`
	// Files and Snapshots in its directory, and their total size.
	Files     int    `json:"files"`
	Snapshots int    `json:"snapshots"`
	Bytes     int64  `json:"bytes"`
	LastFile  uint64 `json:"last_file"`              // highest changeset sequence in the folder
	LastFileT string `json:"last_file_at,omitempty"` // when it was written (its header's clock)
	LastAck   string `json:"last_ack_at,omitempty"`
	LastSeen  string `json:"last_seen,omitempty"` // the later of the two
	// Applied is what its acknowledgement says it has applied, per device.
	Applied map[string]uint64 `json:"applied,omitempty"`
	// AppliedHere is how far this device has applied its files.
	AppliedHere uint64 `json:"applied_here"`
	// Problem says why its acknowledgement is refused, if it is.
	Problem string `json:"problem,omitempty"`
	lastMS  int64
}

// Devices lists every device seen: those with a directory in the folder,
// those this device has applied files of, and those retired.
func (s *Syncer) Devices(ctx context.Context) ([]DeviceInfo, error) {
	return s.devices(ctx, nil)
}

// devices is Devices on the folder listing scan (nil: list it now).
func (s *Syncer) devices(ctx context.Context, scan *folder.Scan) ([]DeviceInfo, error) {
	dirs, err := gc.Survey(s.shared, scan)
	if err != nil {
		return nil, err
	}
	forgotten, err := s.forgotten()
	if err != nil {
		return nil, err
	}
	applied, err := s.st.Applied()
	if err != nil {
		return nil, err
	}
	names, err := s.deviceNames()
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{s.id.Device: true}
	for id := range dirs {
		ids[id] = true
	}
	for id := range applied {
		ids[id] = true
	}
	for _, id := range forgotten {
		ids[id] = true
	}
	retiredBy := map[string][]string{}
	for _, id := range forgotten {
		retiredBy[id] = append(retiredBy[id], DeviceSelf)
	}
	for id, d := range dirs {
		if d.Ack != nil && id != s.id.Device {
			for _, f := range d.Ack.Forgotten {
				retiredBy[f] = append(retiredBy[f], id)
			}
		}
	}
	now := s.cfg.Now()
	var out []DeviceInfo
	for id := range ids {
		if !rdfile.ValidDeviceID(id) {
			continue
		}
		di := DeviceInfo{ID: id, Name: names[id], AppliedHere: applied[id], RetiredBy: retiredBy[id]}
		if d := dirs[id]; d != nil {
			di.Files, di.Snapshots, di.Bytes = len(d.Changesets), len(d.Snapshots), d.Bytes
			if n := len(d.Changesets); n > 0 {
				last := d.Changesets[n-1]
				di.LastFile = last.Seq
				if f, err := s.shared.Open(last.Rel); err == nil {
					// Its clock is at least every clock it had seen from
					// others: a bound on when it was alive that does not
					// trust its own wall clock alone.
					di.lastMS = max(f.Header.CreatedMS, hlc.Timestamp(f.Header.HLC).Millis())
				}
			}
			for _, sn := range d.Snapshots {
				if sn.Header != nil && sn.Header.CreatedMS > di.lastMS {
					di.lastMS = sn.Header.CreatedMS
				}
			}
			di.LastFileT = msTime(di.lastMS)
			if d.Ack != nil {
				di.Applied = d.Ack.Applied
				di.LastAck = msTime(d.Ack.WrittenMS)
				di.lastMS = max(di.lastMS, d.Ack.WrittenMS)
				if di.Name == "" {
					di.Name = d.Ack.DeviceName
				}
			} else if d.AckErr != nil {
				di.Problem = d.AckErr.Error()
			}
		}
		if d := dirs[id]; d != nil && id != s.id.Device {
			// A device whose clock is slow is not silent because its
			// files say an old time: what counts is when something new
			// from it arrived here, by this device's clock.
			evidence := fmt.Sprintf("files %d snapshots %d ack %s", di.LastFile, di.Snapshots, di.LastAck)
			at, err := s.st.Observe(id, evidence, now.UnixMilli())
			if err != nil {
				return nil, err
			}
			di.lastMS = max(di.lastMS, at)
		}
		di.LastSeen = msTime(di.lastMS)
		switch {
		case id == s.id.Device:
			di.Status = DeviceSelf
		case len(di.RetiredBy) > 0:
			di.Status = DeviceRetired
		case di.lastMS == 0 || now.Sub(time.UnixMilli(di.lastMS)) > s.horizon():
			di.Status = DeviceSilent
		default:
			di.Status = DeviceActive
		}
		out = append(out, di)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Status == DeviceSelf) != (out[j].Status == DeviceSelf) {
			return out[i].Status == DeviceSelf
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// ErrUnknownDevice: Forget was given an id this device has never seen.
var ErrUnknownDevice = errors.New("unknown device")

// Forget retires device id: this device's collection no longer waits for
// its acknowledgement, and neither does any other device's, because the
// retirement is published in this device's ack.json. Its files stay (only
// it may delete them); if it comes back it rejoins from a snapshot.
func (s *Syncer) Forget(ctx context.Context, id string) error {
	if !rdfile.ValidDeviceID(id) {
		return fmt.Errorf("%q is not a device id (16 characters a-z, 2-7; `rowdrop devices` lists them): %w", id, ErrUnknownDevice)
	}
	if id == s.id.Device {
		return fmt.Errorf("device %s is this device: run `rowdrop devices forget` on another device to retire this one", id)
	}
	devs, err := s.Devices(ctx)
	if err != nil {
		return err
	}
	known := false
	for _, d := range devs {
		known = known || d.ID == id
	}
	if !known {
		return fmt.Errorf("device %s is not in the folder %s and was never applied here (`rowdrop devices` lists the devices seen): %w", id, s.cfg.Folder, ErrUnknownDevice)
	}
	if err := s.st.Forget(id, s.cfg.Now().UnixMilli()); err != nil {
		return err
	}
	s.log.Info("device retired: collection no longer waits for it", "device", id)
	_, err = s.WriteAck(true)
	return err
}

// deviceWarnings names the devices that hold collection back by being
// silent for longer than the horizon, from the folder listing scan.
func (s *Syncer) deviceWarnings(devs []DeviceInfo) []string {
	var out []string
	for _, d := range devs {
		if d.Status != DeviceSilent {
			continue
		}
		name := d.ID
		if d.Name != "" {
			name = fmt.Sprintf("%s (%s)", d.ID, d.Name)
		}
		since := "no acknowledgement or readable file from it at all"
		if d.LastSeen != "" {
			since = "nothing new from it since " + d.LastSeen
		}
		out = append(out, fmt.Sprintf("device %s is silent: %s (horizon %s). Until it syncs again it holds back the collection of old files; if it is gone for good, run `rowdrop devices forget %s`",
			name, since, s.horizon(), d.ID))
	}
	return out
}
