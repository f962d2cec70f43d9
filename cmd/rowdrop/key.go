package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rowdrop/rowdrop"
)

// newKeyCmd is `rowdrop key`: the folder key (docs/ENCRYPTION.md).
func newKeyCmd(a *app) *cobra.Command {
	var passFile string
	cmd := &cobra.Command{
		Use:   "key init|unlock|change-passphrase [pair flags] [--passphrase-file PATH]",
		Short: "encrypt the shared folder: create, unlock or re-protect its key",
		Long: `Encrypt and sign everything rowdrop writes into the shared folder.
'key init' on the first device creates the folder key, stored in the folder
(.rowdrop-key) under a passphrase; 'key unlock' on every other device opens it
with the same passphrase and asks to be approved ('rowdrop devices approve' on
an approved device); 'key change-passphrase' re-protects it. The passphrase is
read from --passphrase-file, else ROWDROP_PASSPHRASE, else asked without echo.`,
		Example: `  rowdrop key init --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop key unlock --db ~/notes/notes.db --folder ~/Sync/notes
  ROWDROP_PASSPHRASE=... rowdrop key change-passphrase --db ~/notes/notes.db --folder ~/Sync/notes`,
		Args: func(cmd *cobra.Command, args []string) error {
			return usagef("key needs a subcommand: init, unlock or change-passphrase")
		},
	}
	addSettingFlags(cmd.PersistentFlags(), pairFlags)
	cmd.PersistentFlags().StringVar(&passFile, "passphrase-file", "", "read the passphrase from the first line of this file")
	sub := func(use, short, long, example string, fn func(ctx context.Context, s *rowdrop.Syncer, pass func(prompt string) ([]byte, error)) error, withPass bool) *cobra.Command {
		return &cobra.Command{Use: use + " [pair flags]", Short: short, Long: long, Example: example, Args: noArgs,
			RunE: a.action(func(ctx context.Context, _ []string) error {
				p, err := a.onePair("key " + use)
				if err != nil {
					return err
				}
				pass := func(prompt string) ([]byte, error) { return readPassphrase(a, passFile, prompt) }
				cfgPass := []byte(nil)
				if withPass {
					if cfgPass, err = pass("folder passphrase: "); err != nil {
						return err
					}
					p.Config.Passphrase = cfgPass
				}
				s, err := a.open(ctx, p, lockWait, nil)
				if err != nil {
					return err
				}
				defer s.Close()
				return fn(ctx, s, pass)
			})}
	}
	cmd.AddCommand(
		sub("init", "create the folder key on the first device",
			"Create the folder key, store it in the folder under a passphrase, and make this device the one that approves the others.",
			"  rowdrop key init --db ~/notes/notes.db --folder ~/Sync/notes",
			func(ctx context.Context, s *rowdrop.Syncer, pass func(string) ([]byte, error)) error {
				p, err := pass("new folder passphrase: ")
				if err != nil {
					return err
				}
				info, err := s.KeyInit(ctx, p, rowdrop.DefaultKDF)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "folder key created; this device is %s, key fingerprint %s.\n", info.Device, info.Fingerprint)
				if info.Snapshot != "" {
					fmt.Fprintf(a.stdout, "sealed snapshot %s published for devices joining later; the folder's older plaintext files go with collection.\n", info.Snapshot)
				}
				fmt.Fprintln(a.stdout, "on every other device: `rowdrop key unlock`, then approve it here with `rowdrop devices approve ID`.")
				return nil
			}, false),
		sub("unlock", "open the folder key on this device (same passphrase)",
			"Open the folder key with its passphrase, keep it in this device's state directory (mode 0600), and ask to be approved.",
			"  rowdrop key unlock --db ~/notes/notes.db --folder ~/Sync/notes --passphrase-file ~/.config/rowdrop/pass",
			func(ctx context.Context, s *rowdrop.Syncer, _ func(string) ([]byte, error)) error {
				info, err := s.KeyState()
				if err != nil {
					return err
				}
				if info.Approved {
					fmt.Fprintf(a.stdout, "folder key unlocked; device %s (fingerprint %s) is approved.\n", info.Device, info.Fingerprint)
					return nil
				}
				fmt.Fprintf(a.stdout, "folder key unlocked. This device is %s, fingerprint %s.\nOn an approved device run `rowdrop devices approve %s` and check that it shows the same fingerprint; until then the others refuse this device's files.\n", info.Device, info.Fingerprint, info.Device)
				return nil
			}, true),
		sub("change-passphrase", "protect the folder key with a new passphrase",
			"Re-wrap the folder key under a new passphrase (asks for the current one first). The key itself, and so every file, stays the same.",
			"  rowdrop key change-passphrase --db ~/notes/notes.db --folder ~/Sync/notes",
			func(ctx context.Context, s *rowdrop.Syncer, pass func(string) ([]byte, error)) error {
				old, err := pass("current passphrase: ")
				if err != nil {
					return err
				}
				nw, err := pass("new passphrase: ")
				if err != nil {
					return err
				}
				if err := s.ChangePassphrase(old, nw, rowdrop.DefaultKDF); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, "passphrase changed; other devices keep their unlocked key.")
				return nil
			}, false),
	)
	return cmd
}

// readPassphrase reads a passphrase: the first line of file, else
// ROWDROP_PASSPHRASE, else from the terminal without echo (asked twice
// for a new one is left to the user: a typo is fixed by change-passphrase).
func readPassphrase(a *app, file, prompt string) ([]byte, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--passphrase-file: %w", err)
		}
		line, _, _ := strings.Cut(string(data), "\n")
		return []byte(strings.TrimRight(line, "\r")), nil
	}
	if p := os.Getenv("ROWDROP_PASSPHRASE"); p != "" {
		return []byte(p), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, usagef("a passphrase is needed: give --passphrase-file PATH or ROWDROP_PASSPHRASE (standard input is not a terminal to ask on)")
	}
	fmt.Fprint(a.stderr, prompt)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return nil, fmt.Errorf("read the passphrase: %w", err)
	}
	return p, nil
}

// confirm asks a yes/no question on the terminal; false when there is none.
func confirm(a *app, question string) bool {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return false
	}
	fmt.Fprint(a.stderr, question+" [y/N] ")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	return err == nil && strings.EqualFold(strings.TrimSpace(line), "y")
}

var errNotConfirmed = errors.New("not approved: the fingerprint was not confirmed")
