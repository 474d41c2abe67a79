package keyvault

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

var secretNameRule = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

func FuzzSecretName(f *testing.F) {
	for _, s := range []string{"", "a", "SecretPassword", "a-b-c", "-", "bad_name", "a/b", "ä", "a b", "%2F",
		strings.Repeat("x", 127), strings.Repeat("x", 128), "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := ValidSecretName(name), secretNameRule.MatchString(name); got != want {
			t.Fatalf("ValidSecretName(%q) = %v, want %v", name, got, want)
		}
	})
}

func FuzzSetSecretBody(f *testing.F) {
	for _, s := range []string{
		`{"value":"x"}`, `{"value":"x","contentType":"text/plain","tags":{"a":"b"},"attributes":{"enabled":false,"nbf":1,"exp":2}}`,
		``, `null`, `[]`, `{"value":null}`, `{"value":1}`, `{"tags":{"a":1}}`, `{"value":"x","attributes":{"nbf":1e400}}`,
		`{"value":"x","attributes":{"nbf":-9223372036854775808}}`, `{"value":"\ud800"}`, `{"value":"x"} trailing`, "\xff",
	} {
		f.Add(s)
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPut, "https://"+testVaultHost+"/secrets/fuzzed?api-version=7.6", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.officer)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body)
		}
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest && w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body)
		}
	})
}

func BenchmarkGetSecret(b *testing.B) {
	e := newEnv(b)
	_, err := e.svc.SetSecret(testVault, "SecretPassword", "reindeer_flotilla")
	must(b, err)
	req := httptest.NewRequest(http.MethodGet, "https://"+testVaultHost+"/secrets/SecretPassword/?api-version=2026-04-01", nil)
	req.Header.Set("Authorization", "Bearer "+e.officer)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body)
		}
	}
}

func BenchmarkSetSecret(b *testing.B) {
	e := newEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPut, "https://"+testVaultHost+"/secrets/SecretPassword?api-version=2026-04-01",
			strings.NewReader(`{"value":"reindeer_flotilla","contentType":"text/plain"}`))
		req.Header.Set("Authorization", "Bearer "+e.officer)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body)
		}
	}
}
