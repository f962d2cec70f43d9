package importer

import (
	"errors"
	"fmt"
	"os"

	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/state"
)

// The hash chain (docs/FORMAT.md §5.1): (device, seq) names one content
// forever, so a file whose content differs from what this device, an
// ack, or the device's next file recorded for it was replaced under its
// own name. It is reported and never applied; a file this device applied
// and that changed since is reported too (what was applied stays).

// shortSum is a file sum for messages.
func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// replacedReason is the report of a file replaced under its name.
func replacedReason(rel, dev, why, what string) string {
	return fmt.Sprintf("%s: replaced under its own name: %s. A published file is never rewritten, so another program or a second installation of device %s wrote it; %s. Device %s's own sync reports it too; put the original back (a backup or the sync tool's old versions of the file)",
		rel, why, dev, what, dev)
}

// recordHead notes a snapshot's chain head: file n of device d has sum,
// unless this device recorded that file itself.
func (im *Importer) recordHead(d string, n uint64, sum string) error {
	if sum == "" || n == 0 {
		return nil
	}
	have, err := im.State.Sum(d, n)
	if err != nil || have != "" {
		return err
	}
	return im.State.RecordSum(state.FileSum{Dev: d, Seq: n, Sum: sum})
}

// ackSum is what one device's ack says of a file: its writer applied it
// with this sum.
type ackSum struct{ by, sum string }

// ackSums reads, once per import, what every ack in the scan recorded:
// per device, the sum of the file its writer applied last.
func (im *Importer) ackSums() map[string]map[uint64][]ackSum {
	if im.acks != nil || im.scan == nil {
		return im.acks
	}
	im.acks = map[string]map[uint64][]ackSum{}
	for id, d := range im.scan.Dirs {
		if !d.Ack || id == im.Self.Device {
			continue
		}
		a, err := im.Folder.ReadAck(id)
		if err != nil {
			continue // a refused ack only holds collection back
		}
		for dev, sum := range a.Sums {
			n := a.Applied[dev]
			if im.acks[dev] == nil {
				im.acks[dev] = map[uint64][]ackSum{}
			}
			im.acks[dev][n] = append(im.acks[dev][n], ackSum{by: id, sum: sum})
		}
	}
	return im.acks
}

// checkChain says why file e (opened as f, not applied here yet) is not
// the content its (device, seq) names, or "".
func (im *Importer) checkChain(e folder.Entry, f *rdfile.File) (string, error) {
	h, sum := f.Header, f.Sum()
	refused := "refused, not applied (nor the device's later files)"
	rec, err := im.State.Sum(h.Device, h.Seq)
	if err != nil {
		return "", err
	}
	if rec != "" && rec != sum {
		return replacedReason(e.Rel, h.Device, fmt.Sprintf("its content (sum %s) differs from the one this device recorded for it (sum %s)", shortSum(sum), shortSum(rec)), refused), nil
	}
	if h.Prev != "" && h.Seq > 1 {
		prev, err := im.State.Sum(h.Device, h.Seq-1)
		if err != nil {
			return "", err
		}
		if prev != "" && !rdfile.SumsMatch(prev, h.Prev) {
			return replacedReason(e.Rel, h.Device, fmt.Sprintf("it names as its predecessor a file with sum %s, but file %d as applied here has sum %s", shortSum(h.Prev), h.Seq-1, shortSum(prev)), refused), nil
		}
	}
	for _, a := range im.ackSums()[h.Device][h.Seq] {
		if a.sum != sum {
			return replacedReason(e.Rel, h.Device, fmt.Sprintf("its content (sum %s) differs from the one device %s acknowledged applying (sum %s)", shortSum(sum), a.by, shortSum(a.sum)), refused), nil
		}
	}
	if im.scan != nil {
		for _, next := range im.scan.Files[h.Device] {
			if next.Seq != h.Seq+1 {
				continue
			}
			nf, err := im.Folder.Open(next.Rel)
			if err == nil && nf.Header.Prev != "" && !rdfile.SumsMatch(nf.Header.Prev, sum) {
				return replacedReason(e.Rel, h.Device, fmt.Sprintf("its content (sum %s) is not the predecessor its device's next file %s names (sum %s)", shortSum(sum), next.Rel, shortSum(nf.Header.Prev)), refused), nil
			}
		}
	}
	return "", nil
}

// verifyApplied checks the files this device applied that are still in
// the folder against what it recorded: size and modification time first,
// the sum when those changed. A replaced one is reported (broken); what
// was applied stays.
func (im *Importer) verifyApplied(scan *folder.Scan, applied map[string]uint64, res *Result) error {
	for dev, files := range scan.Files {
		if dev == im.Self.Device {
			continue
		}
		var sums map[uint64]state.FileSum
		for _, e := range files {
			if e.Seq > applied[dev] {
				break
			}
			if sums == nil {
				var err error
				if sums, err = im.State.Sums(dev, files[0].Seq); err != nil {
					return err
				}
			}
			rec, ok := sums[e.Seq]
			if !ok || rec.Size == e.Bytes && rec.MtimeNS == e.ModNS {
				continue
			}
			f, err := im.Folder.Open(e.Rel)
			if err == nil && f.Sum() == rec.Sum {
				rec.Size, rec.MtimeNS = e.Bytes, e.ModNS
				if err := im.State.RecordSum(rec); err != nil {
					return err
				}
				if err := im.State.ClearFileStatus(e.Rel); err != nil {
					return err
				}
				continue
			}
			if err == nil && im.splitCopyHolds(scan, dev, e.Seq, rec.Sum) {
				// A split identity, not a replacement: the content this
				// device applied survives as the sync tool's conflict copy,
				// and mergeSplits merges both.
				continue
			}
			why := ""
			switch {
			case errors.Is(err, os.ErrNotExist):
				continue // collected meanwhile
			case err != nil:
				why = fmt.Sprintf("this device applied it with sum %s; now it does not open as that file (%v)", shortSum(rec.Sum), err)
			default:
				why = fmt.Sprintf("this device applied it with sum %s; its content now has sum %s", shortSum(rec.Sum), shortSum(f.Sum()))
			}
			reason := replacedReason(e.Rel, dev, why, "this device keeps what it applied")
			im.log().Error("a file this device applied was replaced in the shared folder", "file", e.Rel, "reason", reason)
			if err := im.record(e.Rel, dev, e.Seq, StatusBroken, reason); err != nil {
				return err
			}
			res.Broken++
		}
	}
	return nil
}

// splitCopyHolds reports whether a conflict copy of device dev's file seq
// in the scan has the sum this device applied under the file's name.
func (im *Importer) splitCopyHolds(scan *folder.Scan, dev string, seq uint64, sum string) bool {
	for _, c := range scan.Conflicts {
		if _, d, _ := rdfile.Classify(c); d != dev {
			continue
		}
		if f, err := im.Folder.Open(c); err == nil && f.Header.Device == dev && f.Header.Seq == seq && f.Sum() == sum {
			return true
		}
	}
	return false
}
