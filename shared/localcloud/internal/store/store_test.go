package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type state struct {
	Names []string `json:"names"`
}

func TestSaveThenLoadRoundTrips(t *testing.T) {
	f := Open(filepath.Join(t.TempDir(), "sub", "state.json"))
	var empty state
	if found, err := f.Load(&empty); found || err != nil {
		t.Fatalf("Load before Save = %v, %v; want nothing found", found, err)
	}
	if err := f.Save(state{Names: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	var got state
	if found, err := f.Load(&got); !found || err != nil {
		t.Fatalf("Load = %v, %v", found, err)
	}
	if len(got.Names) != 2 || got.Names[1] != "b" {
		t.Fatalf("got %+v", got)
	}
	fi, err := os.Stat(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600: state holds secret values", fi.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.Path()), ".*.tmp"))
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

func TestDamagedFileSaysHowToRecover(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(p, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var s state
	_, err := Open(p).Load(&s)
	if err == nil || !strings.Contains(err.Error(), "--reset") {
		t.Fatalf("err = %v, want a hint to --reset", err)
	}
}

func TestMemoryKeepsNothing(t *testing.T) {
	m := Memory()
	if err := m.Save(state{Names: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	var s state
	if found, _ := m.Load(&s); found || len(s.Names) != 0 {
		t.Fatalf("memory store found %+v", s)
	}
}
