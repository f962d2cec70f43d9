package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop"
)

// onePair is the one pair a command acts on (what picks a device).
func (a *app) onePair(what string) (pairConfig, error) {
	pairs, err := a.pairs()
	if err != nil {
		return pairConfig{}, err
	}
	if len(pairs) > 1 {
		return pairConfig{}, usagef("%s acts on one database and the config lists %d: add --db to pick one", what, len(pairs))
	}
	return pairs[0], nil
}

// newEnrollCmds are `devices approve|revoke|pending`: who may write into
// an encrypted folder (docs/ENCRYPTION.md).
func newEnrollCmds(a *app) []*cobra.Command {
	var fingerprint string
	withSyncer := func(fn func(s *rowdrop.Syncer, args []string) error) func(*cobra.Command, []string) error {
		return a.action(func(ctx context.Context, args []string) error {
			p, err := a.onePair("devices")
			if err != nil {
				return err
			}
			s, err := a.open(ctx, p, lockWait, nil)
			if err != nil {
				return err
			}
			defer s.Close()
			return fn(s, args)
		})
	}
	oneID := func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usagef("%s needs exactly one device ID (`rowdrop devices pending` lists those asking)", cmd.Name())
		}
		return nil
	}
	approve := &cobra.Command{
		Use:   "approve ID [--fingerprint FP] [pair flags]",
		Short: "let a device that unlocked the folder key write into the folder",
		Long: `Approve a device that ran 'rowdrop key unlock': its files are accepted by
every device from then on. Compare the fingerprint shown here with the one the
device showed; give it with --fingerprint to approve without a question.`,
		Example: "  rowdrop devices approve k3x9q2mzt7w4a5bc --fingerprint ABCD-EFGH-IJKL-MNOP --db ~/notes/notes.db --folder ~/Sync/notes",
		Args:    oneID,
		RunE: withSyncer(func(s *rowdrop.Syncer, args []string) error {
			fp := fingerprint
			if fp == "" {
				pend, err := s.PendingDevices()
				if err != nil {
					return err
				}
				for _, p := range pend {
					if p.Device == args[0] {
						fp = p.Fingerprint
					}
				}
				if fp == "" {
					return fmt.Errorf("device %s has not asked for approval: run `rowdrop key unlock` on it first", args[0])
				}
				if !confirm(a, fmt.Sprintf("device %s has key fingerprint %s: is that what it shows?", args[0], fp)) {
					return fmt.Errorf("%w (compare it on both screens, then run again with --fingerprint %s)", errNotConfirmed, fp)
				}
			}
			if err := s.ApproveDevice(args[0], fp); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "device %s approved (fingerprint %s).\n", args[0], fp)
			return nil
		}),
	}
	approve.Flags().StringVar(&fingerprint, "fingerprint", "", "the fingerprint the device showed (approves without asking)")
	revoke := &cobra.Command{
		Use:   "revoke ID [pair flags]",
		Short: "refuse a device's later files on every device",
		Long: `Revoke a device (a lost laptop): every device refuses its files after the
last one this device applied. It still knows the folder key, so it can read
what it is sent; see docs/ENCRYPTION.md.`,
		Example: "  rowdrop devices revoke k3x9q2mzt7w4a5bc --db ~/notes/notes.db --folder ~/Sync/notes",
		Args:    oneID,
		RunE: withSyncer(func(s *rowdrop.Syncer, args []string) error {
			after, err := s.RevokeDevice(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "device %s revoked: its files after %d are refused everywhere.\n", args[0], after)
			return nil
		}),
	}
	pending := &cobra.Command{
		Use:     "pending [pair flags]",
		Short:   "the devices that unlocked the key and wait for approval",
		Long:    "List the devices that ran 'rowdrop key unlock' and are not approved yet, with their fingerprints.",
		Example: "  rowdrop devices pending --db ~/notes/notes.db --folder ~/Sync/notes",
		Args:    noArgs,
		RunE: withSyncer(func(s *rowdrop.Syncer, _ []string) error {
			pend, err := s.PendingDevices()
			if err != nil {
				return err
			}
			if len(pend) == 0 {
				fmt.Fprintln(a.stdout, "no device waits for approval.")
			}
			for _, p := range pend {
				fmt.Fprintf(a.stdout, "  %s  %s\n", p.Device, p.Fingerprint)
			}
			return nil
		}),
	}
	return []*cobra.Command{approve, revoke, pending}
}
