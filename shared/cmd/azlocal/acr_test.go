package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tarFiles lists an archive's regular files with their contents.
func tarFiles(t *testing.T, archive []byte) map[string]string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[hdr.Name] = string(b)
		}
	}
}

func TestPackSourceHonoursDockerignoreAsAzDoes(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"go.mod":                  "module x",
		"main.go":                 "package main",
		"README.md":               "docs",
		"docs/keep.md":            "kept by a later exception",
		"docs/drop.md":            "kept: *.md matches the root folder only",
		"bin/app":                 "binary",
		"a/b/c.tmp":               "deep temp",
		".git/HEAD":               "ref",
		".gitignore":              "bin",
		"deploy/Dockerfile":       "FROM golang",
		".dockerignore":           "# comment\n*.md\n!docs/keep.md\nbin\n**/*.tmp\n",
		"deploy/other.dockerfile": "unused",
	})
	var warnings []string
	warn := func(f string, args ...any) { warnings = append(warnings, f) }
	archive, err := packSource(src, filepath.Join(src, "deploy", "Dockerfile"), "0123_Dockerfile", warn)
	if err != nil {
		t.Fatal(err)
	}
	got := tarFiles(t, archive)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{".dockerignore", "0123_Dockerfile", "deploy/Dockerfile", "deploy/other.dockerfile", "docs/drop.md", "docs/keep.md", "go.mod", "main.go"}
	if !slices.Equal(names, want) {
		t.Errorf("archive holds %v\nwant %v", names, want)
	}
	if got["0123_Dockerfile"] != "FROM golang" {
		t.Errorf("the Dockerfile added under its unique name holds %q", got["0123_Dockerfile"])
	}
	if len(warnings) == 0 {
		t.Error("no warning about the files excluded by the default (VCS) rules")
	}
}

func TestPackSourceWithoutDockerignoreTakesEverythingButVCS(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{"Dockerfile": "FROM x", "a/b.go": "b", ".git/config": "c", ".hg/x": "y"})
	archive, err := packSource(src, filepath.Join(src, "Dockerfile"), "f_Dockerfile", func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	got := tarFiles(t, archive)
	for _, name := range []string{"Dockerfile", "a/b.go", "f_Dockerfile"} {
		if _, ok := got[name]; !ok {
			t.Errorf("archive lacks %s: %v", name, got)
		}
	}
	for _, name := range []string{".git/config", ".hg/x"} {
		if _, ok := got[name]; ok {
			t.Errorf("archive holds %s, which az never uploads", name)
		}
	}
}

func TestDockerfileSpecificIgnoreOverridesTheDefault(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"app.Dockerfile":              "FROM x",
		"app.Dockerfile.dockerignore": "secret.txt\n",
		".dockerignore":               "*.go\n",
		"main.go":                     "package main",
		"secret.txt":                  "s",
	})
	archive, err := packSource(src, filepath.Join(src, "app.Dockerfile"), "u_app.Dockerfile", func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	got := tarFiles(t, archive)
	if _, ok := got["main.go"]; !ok {
		t.Error("main.go was excluded by .dockerignore although app.Dockerfile.dockerignore overrides it")
	}
	for _, name := range []string{"secret.txt", ".dockerignore"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s was uploaded; the Dockerfile's own ignore file excludes it (and .dockerignore itself)", name)
		}
	}
}
