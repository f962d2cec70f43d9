// Package fsx holds the few filesystem moves rowdrop makes: atomic publish
// (temp name, fsync, rename, fsync directory) and its helpers. Everything that
// appears under a final name in the shared folder goes through here.
//
// What differs between operating systems lives in one file per concept
// and platform (golang.org/x/sys, never Linux-only syscall types):
// locking (lock_*.go), free space (free_*.go), renaming over a name
// another process has open and publishing without replacing (rename_*.go),
// opening for reading without blocking such a rename (open_*.go),
// directory fsync and what replaces it on Windows (syncdir_*.go), and
// whether path names fold case (case_*.go).
package fsx

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TempPrefix starts every temporary name rowdrop writes. Readers (rowdrop's
// and sync tools' ignore lists) skip names starting with a dot.
const TempPrefix = ".rowdrop-tmp-"

// IsTemp reports whether a base name is one of rowdrop's temporary files.
func IsTemp(name string) bool {
	return len(name) > len(TempPrefix) && name[:len(TempPrefix)] == TempPrefix
}

func tempName(dir string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(dir, TempPrefix+hex.EncodeToString(b[:]))
}

// writeTemp writes a new temporary file in dir with the content fn
// writes, fsyncs and closes it, and returns its path. On error nothing is
// left behind.
func writeTemp(dir string, fn func(w io.Writer) error) (string, error) {
	return writeTempMode(dir, fn, 0o644)
}

func writeTempMode(dir string, fn func(w io.Writer) error, perm os.FileMode) (string, error) {
	tmp := tempName(dir)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return "", fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := fn(f); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("fsync %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("close %s: %w", tmp, err)
	}
	return tmp, nil
}

// WriteFunc atomically creates path with the content fn writes. The file
// appears whole under its final name or not at all. It refuses to replace an
// existing file: every rowdrop file is written once.
func WriteFunc(path string, fn func(w io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, fn)
	if err != nil {
		return err
	}
	if err := linkNoReplace(tmp, path); errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists: %w", path, os.ErrExist)
	} else if err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	return SyncDir(dir)
}

// Replace atomically writes data at path, replacing any earlier version.
// It is only for files a single owner rewrites (its own state files).
func Replace(path string, data []byte) error {
	return replaceMode(path, data, 0o644)
}

// ReplacePrivate is Replace for a secret: the file is created readable
// and writable by its owner only (mode 0600; on Windows the mode only
// sets read-only or not, and the directory's ACL decides who reads it).
func ReplacePrivate(path string, data []byte) error {
	if err := replaceMode(path, data, 0o600); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

func replaceMode(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := writeTempMode(dir, func(w io.Writer) error {
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}, perm)
	if err != nil {
		return err
	}
	if err := Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	return SyncDir(dir)
}

// Publish copies the finished file src to dst atomically. If dst already
// holds identical bytes (a retry after a crash) it succeeds; if it holds
// different bytes it fails with os.ErrExist and touches nothing.
func Publish(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dst), err)
	}
	if same, err := SameContent(src, dst); err == nil {
		if same {
			return nil
		}
		return fmt.Errorf("%s already exists with other content: %w", dst, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return WriteFunc(dst, func(w io.Writer) error {
		if _, err := io.Copy(w, in); err != nil {
			return fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
		return nil
	})
}

// SameContent reports whether two files hold the same bytes. A missing b
// yields an error wrapping os.ErrNotExist.
func SameContent(a, b string) (bool, error) {
	fb, err := OpenRead(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	fa, err := OpenRead(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	sa, _ := fa.Stat()
	sb, _ := fb.Stat()
	if sa.Size() != sb.Size() {
		return false, nil
	}
	ba := make([]byte, 64<<10)
	bb := make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			return errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF), nil
		}
	}
}
