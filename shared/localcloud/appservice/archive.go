package appservice

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// extract unpacks a gzipped tar build context into dir, refusing anything that could write or
// point outside dir: absolute names, names with "..", symbolic links that lead out (checked
// again on the extracted tree, where links through links are resolved), hard links, devices,
// and more than limit bytes or maxContextEntries entries in all.
func extract(r io.Reader, dir string, limit int64) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("the build context is not a gzipped tar archive: %w", err)
	}
	defer zr.Close()
	// os.Root refuses any write that a name or an earlier link would send outside dir.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()

	tr := tar.NewReader(zr)
	var total int64
	for entries := 0; ; entries++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		if entries >= maxContextEntries {
			return fmt.Errorf("the archive has more than %d entries", maxContextEntries)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := localName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o755)
		case tar.TypeReg:
			var n int64
			n, err = writeFile(root, name, hdr.FileInfo().Mode(), io.LimitReader(tr, limit-total+1))
			total += n
			if err == nil && total > limit {
				err = fmt.Errorf("the build context is larger than %d MiB once unpacked; add a .dockerignore", limit>>20)
			}
		case tar.TypeSymlink:
			target := hdr.Linkname
			if path.IsAbs(target) || !filepath.IsLocal(filepath.Join(filepath.Dir(name), filepath.FromSlash(target))) {
				return fmt.Errorf("the archive's symbolic link %s -> %s leads out of the build context", hdr.Name, target)
			}
			if err = mkParent(root, name); err == nil {
				err = root.Symlink(target, name)
			}
		default:
			return fmt.Errorf("the archive's entry %s is a %s; only files, folders and symbolic links are allowed", hdr.Name, typeName(hdr.Typeflag))
		}
		if err != nil {
			return fmt.Errorf("extracting %s: %w", hdr.Name, err)
		}
	}
	return checkLinks(dir)
}

// localName cleans an entry's name and refuses names that leave the context.
func localName(name string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if path.IsAbs(name) || (clean != "." && !filepath.IsLocal(filepath.FromSlash(clean))) {
		return "", fmt.Errorf("the archive's entry %q is outside the build context (an absolute path or one with ..)", name)
	}
	return filepath.FromSlash(clean), nil
}

func mkParent(root *os.Root, name string) error {
	if parent := filepath.Dir(name); parent != "." {
		return root.MkdirAll(parent, 0o755)
	}
	return nil
}

func writeFile(root *os.Root, name string, mode fs.FileMode, r io.Reader) (int64, error) {
	if err := mkParent(root, name); err != nil {
		return 0, err
	}
	perm := fs.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// checkLinks resolves every symbolic link of the extracted tree and refuses any that ends
// outside it: a link that looks local by name can still lead out through another link (a -> .,
// then a/b -> ..), and go build, which runs next, follows links.
func checkLinks(dir string) error {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling or looping: it reaches nothing
		}
		if rel, err := filepath.Rel(realDir, target); err != nil || !filepath.IsLocal(rel) {
			name, _ := filepath.Rel(dir, p)
			return fmt.Errorf("the archive's symbolic link %s leads out of the build context", filepath.ToSlash(name))
		}
		return nil
	})
}

func typeName(t byte) string {
	switch t {
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "named pipe"
	}
	return fmt.Sprintf("entry of type %q", t)
}
