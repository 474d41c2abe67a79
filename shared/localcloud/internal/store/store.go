// Package store keeps a service's state in one JSON file that survives a crash: every save writes
// a temporary file, syncs it, renames it over the old one and syncs the folder, so an
// acknowledged write is on disk before the caller answers, even if the process is killed next.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File is one JSON state file. The zero value (no path) keeps nothing: Load finds nothing and
// Save does nothing, which is what in-process tests want.
type File struct {
	path string
}

// Open names the file; nothing is read or written until Load or Save.
func Open(path string) *File { return &File{path: path} }

// Memory is a File that keeps nothing.
func Memory() *File { return &File{} }

// Path is where the state lives ("" for memory).
func (f *File) Path() string { return f.path }

// Load decodes the file into v. It reports found=false, and leaves v alone, when there is no file.
func (f *File) Load(v any) (found bool, err error) {
	if f == nil || f.path == "" {
		return false, nil
	}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s is damaged (%v): start the local cloud with --reset to begin again", f.path, err)
	}
	return true, nil
}

// Save replaces the file with v, durably.
func (f *File) Save(v any) error {
	if f == nil || f.path == "" {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFileAtomic(f.path, b, 0o600)
}

// WriteFileAtomic writes data to path so that a reader (or a restart after a crash) sees either
// the old content or the new, never a mix.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
