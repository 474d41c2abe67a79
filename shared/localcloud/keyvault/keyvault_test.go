package keyvault

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
)

var versionedID = regexp.MustCompile(`^https://myvault\.vault\.azure\.net/secrets/([0-9a-zA-Z-]+)/([0-9a-f]{32})$`)

func TestChallenge(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, method, path, auth, body string }{
		{"no header", http.MethodGet, "/secrets/x", "", ""},
		// The SDK's first PUT carries no body: the challenge must not depend on it.
		{"no header, empty PUT", http.MethodPut, "/secrets/x", "", ""},
		{"basic scheme", http.MethodGet, "/secrets", "Basic dXNlcjpwYXNz", ""},
		{"empty bearer", http.MethodGet, "/secrets", "Bearer ", ""},
		{"no api-version either", http.MethodGet, "/secrets", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.path + "?api-version=7.6"
			if tc.name == "no api-version either" {
				target = tc.path
			}
			req := e.raw(tc.method, testVaultHost, target, "", tc.body)
			if tc.auth != "" {
				r := httptest.NewRequest(tc.method, "https://"+testVaultHost+target, nil)
				r.Header.Set("Authorization", tc.auth)
				req = e.serve(r)
			}
			req.expect(t, http.StatusUnauthorized)
			if got := req.header.Get("WWW-Authenticate"); got != wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, wantChallenge)
			}
			if want := `{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}`; string(req.body) != want {
				t.Errorf("body = %s, want %s", req.body, want)
			}
			if ct := req.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t)
	foreign := e.principal("foreign", otherTenant, "", "")
	// Even a role on the vault does not let another tenant's token in.
	_, err := e.dir.AssignRole(strings.TrimPrefix(foreign, principalPrefix), "Key Vault Secrets Officer", testVaultID)
	must(t, err)
	for _, tc := range []struct{ token, want string }{
		{"err-expired", "[TokenExpired] Error validating token: 'S2S12086'."},
		{"err-notyet", "[TokenNotYetValid]"},
		{"err-audience", "AKV10022: Invalid audience. Expected https://vault.azure.net"},
		{"err-issuer", "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/" + testTenant + "/"},
		{"err-signature", "AKV10046:"},
		{"err-malformed", "[MalformedToken]"},
		{"err-principal", "[PrincipalNotFound]"},
		{"err-other", "[AggregatedAuthenticationFailure]"},
		{foreign, "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/" + testTenant + "/, https://login.microsoftonline.com/" + testTenant + "/v2.0, found https://sts.windows.net/" + otherTenant + "/."},
	} {
		t.Run(tc.token, func(t *testing.T) {
			r := e.do(http.MethodGet, "/secrets", tc.token, "").expect(t, http.StatusUnauthorized)
			if got := r.header.Get("WWW-Authenticate"); got != wantChallenge {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			code, _ := r.errorCode(t)
			if msg := r.errorMessage(t); code != "Unauthorized" || !strings.HasPrefix(msg, tc.want) {
				t.Errorf("error %s %q, want Unauthorized %q…", code, msg, tc.want)
			}
			if bytes.Contains(r.body, []byte(tc.token)) && strings.HasPrefix(tc.token, principalPrefix) {
				t.Errorf("the error echoes the token: %s", r.body)
			}
		})
	}
}

func TestHosts(t *testing.T) {
	e := newEnv(t)
	r := e.raw(http.MethodGet, "nosuchvault.vault.azure.net", "/secrets?api-version=7.6", e.officer, "").expect(t, http.StatusNotFound)
	if code, _ := r.errorCode(t); code != "VaultNotFound" || !strings.Contains(r.errorMessage(t), "keyvault create --name nosuchvault") {
		t.Errorf("unknown vault: %s", r.body)
	}
	e.raw(http.MethodGet, "example.com", "/secrets?api-version=7.6", e.officer, "").expect(t, http.StatusNotFound)
	// Hosts are case-insensitive and may carry the port, as in a nextLink.
	e.raw(http.MethodGet, "MyVault.vault.azure.net:443", "/secrets?api-version=7.6", e.officer, "").expect(t, http.StatusOK)
}

func TestSecretLifecycle(t *testing.T) {
	e := newEnv(t)
	tok := e.officer
	created := e.clock.Now().Unix()

	set := e.do(http.MethodPut, "/secrets/SecretPassword", tok,
		`{"value":"reindeer_flotilla","contentType":"text/plain","tags":{"env":"dev"},"attributes":{"nbf":1700000000}}`).expect(t, http.StatusOK)
	var b1 SecretBundle
	set.decode(t, &b1)
	m := versionedID.FindStringSubmatch(b1.ID)
	if m == nil || m[1] != "SecretPassword" {
		t.Fatalf("id %q", b1.ID)
	}
	v1 := m[2]
	wantAttrs := SecretAttributes{Enabled: true, NotBefore: ptr(int64(1700000000)), Created: created, Updated: created,
		RecoveryLevel: "Recoverable+Purgeable", RecoverableDays: 90}
	if b1.Value == nil || *b1.Value != "reindeer_flotilla" || b1.ContentType != "text/plain" || b1.Tags["env"] != "dev" || !attrsEqual(b1.Attributes, wantAttrs) {
		t.Errorf("set: %s", set.body)
	}

	e.clock.Advance(time.Minute)
	var b2 SecretBundle
	e.do(http.MethodPut, "/secrets/SecretPassword", tok, `{"value":"v2"}`).expect(t, http.StatusOK).decode(t, &b2)
	v2 := versionedID.FindStringSubmatch(b2.ID)[2]
	if v1 == v2 {
		t.Fatal("a PUT did not make a new version")
	}

	for _, path := range []string{"/secrets/SecretPassword", "/secrets/SecretPassword/", "/secrets/secretpassword", "/secrets/SecretPassword/" + v2} {
		var got SecretBundle
		e.do(http.MethodGet, path, tok, "").expect(t, http.StatusOK).decode(t, &got)
		if got.ID != b2.ID || got.Value == nil || *got.Value != "v2" {
			t.Errorf("GET %s: %+v", path, got)
		}
	}
	var old SecretBundle
	e.do(http.MethodGet, "/secrets/SecretPassword/"+v1, tok, "").expect(t, http.StatusOK).decode(t, &old)
	if *old.Value != "reindeer_flotilla" {
		t.Errorf("GET by version: %+v", old)
	}

	// PATCH changes metadata only and answers without the value.
	e.clock.Advance(time.Minute)
	patch := e.do(http.MethodPatch, "/secrets/SecretPassword/"+v1, tok, `{"contentType":"x","tags":{"a":"b"},"attributes":{"exp":1900000000}}`).expect(t, http.StatusOK)
	if pm := patch.json(t); pm["value"] != nil {
		t.Errorf("PATCH returned the value: %s", patch.body)
	}
	var pb SecretBundle
	patch.decode(t, &pb)
	if pb.ContentType != "x" || pb.Tags["a"] != "b" || pb.Tags["env"] != "" || *pb.Attributes.Expires != 1900000000 ||
		pb.Attributes.Updated != e.clock.Now().Unix() || pb.Attributes.Created != created {
		t.Errorf("PATCH: %s", patch.body)
	}
	e.do(http.MethodPatch, "/secrets/SecretPassword", tok, `{"contentType":"latest"}`).expect(t, http.StatusOK)
	e.do(http.MethodGet, "/secrets/SecretPassword", tok, "").expect(t, http.StatusOK).decode(t, &b2)
	if b2.ContentType != "latest" {
		t.Errorf("PATCH without a version did not update the latest: %+v", b2)
	}
	e.do(http.MethodPatch, "/secrets/SecretPassword/"+strings.Repeat("0", 32), tok, `{}`).expect(t, http.StatusNotFound)

	// Lists carry metadata, never values; a secret's ID there has no version.
	list := e.do(http.MethodGet, "/secrets", tok, "").expect(t, http.StatusOK)
	var items listResult[SecretItem]
	list.decode(t, &items)
	if len(items.Value) != 1 || items.Value[0].ID != "https://myvault.vault.azure.net/secrets/SecretPassword" || items.NextLink != nil ||
		items.Value[0].ContentType != "latest" || bytes.Contains(list.body, []byte("v2")) {
		t.Errorf("list: %s", list.body)
	}
	if !bytes.Contains(list.body, []byte(`"nextLink":null`)) {
		t.Errorf("list has no nextLink: null: %s", list.body)
	}
	var versions listResult[SecretItem]
	e.do(http.MethodGet, "/secrets/SecretPassword/versions", tok, "").expect(t, http.StatusOK).decode(t, &versions)
	if len(versions.Value) != 2 || versions.Value[0].ID != b1.ID || versions.Value[1].ID != b2.ID {
		t.Errorf("versions: %+v", versions)
	}

	// Soft delete: the name is held until it is recovered or purged.
	e.clock.Advance(time.Hour)
	del := e.do(http.MethodDelete, "/secrets/SecretPassword", tok, "").expect(t, http.StatusOK)
	var d DeletedSecretBundle
	del.decode(t, &d)
	now := e.clock.Now()
	if d.RecoveryID != "https://myvault.vault.azure.net/deletedsecrets/SecretPassword" || d.DeletedDate != now.Unix() ||
		d.ScheduledPurgeDate != now.AddDate(0, 0, 90).Unix() || d.ID != b2.ID || d.Value != nil {
		t.Errorf("delete: %s", del.body)
	}
	e.do(http.MethodGet, "/secrets/SecretPassword", tok, "").expect(t, http.StatusNotFound)
	e.do(http.MethodGet, "/deletedsecrets/SecretPassword", tok, "").expect(t, http.StatusOK)
	var deleted listResult[DeletedSecretItem]
	e.do(http.MethodGet, "/deletedsecrets", tok, "").expect(t, http.StatusOK).decode(t, &deleted)
	if len(deleted.Value) != 1 || deleted.Value[0].RecoveryID != d.RecoveryID || deleted.Value[0].ID != "https://myvault.vault.azure.net/secrets/SecretPassword" {
		t.Errorf("deleted list: %+v", deleted)
	}
	conflict := e.do(http.MethodPut, "/secrets/SecretPassword", tok, `{"value":"again"}`).expect(t, http.StatusConflict)
	if code, inner := conflict.errorCode(t); code != "Conflict" || inner != "ObjectIsDeletedButRecoverable" ||
		conflict.errorMessage(t) != "Secret SecretPassword is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged." {
		t.Errorf("set while deleted: %s", conflict.body)
	}

	var rec SecretBundle
	e.do(http.MethodPost, "/deletedsecrets/SecretPassword/recover", tok, "").expect(t, http.StatusOK).decode(t, &rec)
	if rec.ID != b2.ID || rec.Value != nil {
		t.Errorf("recover: %+v", rec)
	}
	e.do(http.MethodGet, "/deletedsecrets/SecretPassword", tok, "").expect(t, http.StatusNotFound)
	e.do(http.MethodGet, "/secrets/SecretPassword/"+v1, tok, "").expect(t, http.StatusOK)

	// Purge removes it for good and frees the name.
	e.do(http.MethodDelete, "/secrets/SecretPassword", tok, "").expect(t, http.StatusOK)
	purge := e.do(http.MethodDelete, "/deletedsecrets/SecretPassword", tok, "").expect(t, http.StatusNoContent)
	if len(purge.body) != 0 {
		t.Errorf("purge body %q", purge.body)
	}
	nf := e.do(http.MethodGet, "/deletedsecrets/SecretPassword", tok, "").expect(t, http.StatusNotFound)
	if code, _ := nf.errorCode(t); code != "SecretNotFound" || nf.errorMessage(t) != "Deleted Secret not found: SecretPassword" {
		t.Errorf("deleted not found: %s", nf.body)
	}
	e.do(http.MethodDelete, "/deletedsecrets/SecretPassword", tok, "").expect(t, http.StatusNotFound)
	e.do(http.MethodPost, "/deletedsecrets/SecretPassword/recover", tok, "").expect(t, http.StatusNotFound)
	e.do(http.MethodDelete, "/secrets/SecretPassword", tok, "").expect(t, http.StatusNotFound)
	var versionsAfter listResult[SecretItem]
	e.do(http.MethodGet, "/secrets/SecretPassword/versions", tok, "").expect(t, http.StatusOK).decode(t, &versionsAfter)
	if len(versionsAfter.Value) != 0 {
		t.Errorf("versions after purge: %+v", versionsAfter)
	}
	e.do(http.MethodPut, "/secrets/SecretPassword", tok, `{"value":"fresh"}`).expect(t, http.StatusOK)
}

func TestNotFoundMessages(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/secrets/missing", e.officer, "").expect(t, http.StatusNotFound)
	if code, _ := r.errorCode(t); code != "SecretNotFound" || !strings.HasPrefix(r.errorMessage(t), "A secret with (name/id) missing was not found in this key vault.") {
		t.Errorf("%s", r.body)
	}
	e.do(http.MethodPut, "/secrets/present", e.officer, `{"value":"x"}`).expect(t, http.StatusOK)
	r = e.do(http.MethodGet, "/secrets/present/0123456789abcdef0123456789abcdef", e.officer, "").expect(t, http.StatusNotFound)
	if !strings.HasPrefix(r.errorMessage(t), "A secret with (name/id) present/0123456789abcdef0123456789abcdef was not found") {
		t.Errorf("%s", r.body)
	}
}

func TestDeletedSecretIsPurgedOnSchedule(t *testing.T) {
	e := newEnv(t)
	e.do(http.MethodPut, "/secrets/s", e.officer, `{"value":"x"}`).expect(t, http.StatusOK)
	e.do(http.MethodDelete, "/secrets/s", e.officer, "").expect(t, http.StatusOK)
	e.clock.Advance(90*24*time.Hour - time.Second)
	e.do(http.MethodGet, "/deletedsecrets/s", e.officer, "").expect(t, http.StatusOK)
	e.clock.Advance(time.Second)
	e.do(http.MethodGet, "/deletedsecrets/s", e.officer, "").expect(t, http.StatusNotFound)
	var deleted listResult[DeletedSecretItem]
	e.do(http.MethodGet, "/deletedsecrets", e.officer, "").expect(t, http.StatusOK).decode(t, &deleted)
	if len(deleted.Value) != 0 {
		t.Errorf("purged secret still listed: %+v", deleted)
	}
	e.do(http.MethodPut, "/secrets/s", e.officer, `{"value":"y"}`).expect(t, http.StatusOK)
}

func TestDisabledSecret(t *testing.T) {
	e := newEnv(t)
	var b SecretBundle
	e.do(http.MethodPut, "/secrets/off", e.officer, `{"value":"hidden","attributes":{"enabled":false}}`).expect(t, http.StatusOK).decode(t, &b)
	for _, path := range []string{"/secrets/off", "/secrets/off/" + versionedID.FindStringSubmatch(b.ID)[2]} {
		r := e.do(http.MethodGet, path, e.officer, "").expect(t, http.StatusForbidden)
		code, inner := r.errorCode(t)
		if code != "Forbidden" || inner != "SecretDisabled" || r.errorMessage(t) != "Operation get is not allowed on a disabled secret." {
			t.Errorf("GET %s: %s", path, r.body)
		}
		if bytes.Contains(r.body, []byte("hidden")) {
			t.Errorf("refusal leaks the value: %s", r.body)
		}
	}
	var items listResult[SecretItem]
	e.do(http.MethodGet, "/secrets", e.officer, "").expect(t, http.StatusOK).decode(t, &items)
	if len(items.Value) != 1 || items.Value[0].Attributes.Enabled {
		t.Errorf("a disabled secret must still be listed, as disabled: %+v", items)
	}
	e.do(http.MethodPatch, "/secrets/off", e.officer, `{"attributes":{"enabled":true}}`).expect(t, http.StatusOK)
	e.do(http.MethodGet, "/secrets/off", e.officer, "").expect(t, http.StatusOK)

	// nbf and exp are the app's to enforce, not the service's.
	future, past := e.clock.Now().Add(time.Hour).Unix(), e.clock.Now().Add(-time.Hour).Unix()
	e.do(http.MethodPut, "/secrets/early", e.officer, fmt.Sprintf(`{"value":"x","attributes":{"nbf":%d}}`, future)).expect(t, http.StatusOK)
	e.do(http.MethodGet, "/secrets/early", e.officer, "").expect(t, http.StatusOK)
	e.do(http.MethodPut, "/secrets/late", e.officer, fmt.Sprintf(`{"value":"x","attributes":{"exp":%d}}`, past)).expect(t, http.StatusOK)
	e.do(http.MethodGet, "/secrets/late", e.officer, "").expect(t, http.StatusOK)
}

func TestPaging(t *testing.T) {
	e := newEnv(t)
	const n = 60
	want := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("s%02d", i)
		want[name] = true
		_, err := e.svc.SetSecret(testVault, name, "v")
		must(t, err)
	}
	for _, size := range []int{1, 7, 25} {
		got := e.collect(fmt.Sprintf("/secrets?api-version=7.6&maxresults=%d", size), size)
		if len(got) != n {
			t.Fatalf("maxresults=%d: %d items, want %d", size, len(got), n)
		}
		for i, id := range got {
			if name := strings.TrimPrefix(id, "https://myvault.vault.azure.net/secrets/"); !want[name] || (i > 0 && got[i-1] >= id) {
				t.Fatalf("maxresults=%d: item %d is %q", size, i, id)
			}
		}
	}
	// Without maxresults a page holds 25.
	if got := e.collect("/secrets?api-version=2026-04-01", 25); len(got) != n {
		t.Errorf("default paging: %d items", len(got))
	}

	for range 30 {
		_, err := e.svc.SetSecret(testVault, "s00", "again")
		must(t, err)
	}
	if got := e.collect("/secrets/s00/versions?api-version=7.6&maxresults=4", 4); len(got) != 31 {
		t.Errorf("versions: %d items, want 31", len(got))
	}
	for _, name := range []string{"s01", "s02", "s03"} {
		e.do(http.MethodDelete, "/secrets/"+name, e.officer, "").expect(t, http.StatusOK)
	}
	if got := e.collect("/deletedsecrets?api-version=7.6&maxresults=2", 2); len(got) != 3 {
		t.Errorf("deleted: %d items, want 3", len(got))
	}

	for _, bad := range []string{"0", "26", "-1", "ten"} {
		r := e.do(http.MethodGet, "/secrets?maxresults="+bad, e.officer, "").expect(t, http.StatusBadRequest)
		if code, _ := r.errorCode(t); code != "BadParameter" {
			t.Errorf("maxresults=%s: %s", bad, r.body)
		}
	}
	e.do(http.MethodGet, "/secrets?$skiptoken=not-a-token", e.officer, "").expect(t, http.StatusBadRequest)
}

// collect follows nextLink from a first page to the last, checking every link, and returns the
// IDs in order.
func (e *env) collect(first string, size int) []string {
	e.t.Helper()
	var ids []string
	target, host := first, testVaultHost
	for pages := 0; ; pages++ {
		if pages > 100 {
			e.t.Fatal("nextLink never ends")
		}
		var p listResult[SecretItem]
		e.raw(http.MethodGet, host, target, e.officer, "").expect(e.t, http.StatusOK).decode(e.t, &p)
		if len(p.Value) > size {
			e.t.Fatalf("page of %d items, more than %d", len(p.Value), size)
		}
		for _, it := range p.Value {
			ids = append(ids, it.ID)
		}
		if p.NextLink == nil {
			return ids
		}
		u, err := url.Parse(*p.NextLink)
		must(e.t, err)
		if u.Scheme != "https" || u.Hostname() != testVaultHost || u.Query().Get("api-version") == "" || u.Query().Get("$skiptoken") == "" {
			e.t.Fatalf("nextLink %q", *p.NextLink)
		}
		host, target = u.Host, u.RequestURI()
	}
}

func TestBackupRestore(t *testing.T) {
	e := newEnv(t)
	tok := e.officer
	var v1, v2 SecretBundle
	e.do(http.MethodPut, "/secrets/b", tok, `{"value":"one","tags":{"k":"v"}}`).expect(t, http.StatusOK).decode(t, &v1)
	e.do(http.MethodPut, "/secrets/b", tok, `{"value":"two","contentType":"ct"}`).expect(t, http.StatusOK).decode(t, &v2)

	var blob struct{ Value string }
	e.do(http.MethodPost, "/secrets/b/backup", tok, "").expect(t, http.StatusOK).decode(t, &blob)
	raw, err := base64.RawURLEncoding.DecodeString(blob.Value)
	if err != nil || bytes.Contains(raw, []byte("one")) {
		t.Fatalf("backup blob must be base64url and opaque: %v", err)
	}
	e.do(http.MethodPost, "/secrets/missing/backup", tok, "").expect(t, http.StatusNotFound)

	body := fmt.Sprintf(`{"value":%q}`, blob.Value)
	r := e.do(http.MethodPost, "/secrets/restore", tok, body).expect(t, http.StatusConflict)
	if code, _ := r.errorCode(t); code != "Conflict" {
		t.Errorf("restore over a live secret: %s", r.body)
	}
	e.do(http.MethodDelete, "/secrets/b", tok, "").expect(t, http.StatusOK)
	r = e.do(http.MethodPost, "/secrets/restore", tok, body).expect(t, http.StatusConflict)
	if _, inner := r.errorCode(t); inner != "ObjectIsDeletedButRecoverable" {
		t.Errorf("restore over a deleted secret: %s", r.body)
	}
	e.do(http.MethodDelete, "/deletedsecrets/b", tok, "").expect(t, http.StatusNoContent)

	tampered := bytes.Clone(raw)
	tampered[len(tampered)-5] ^= 1
	for name, value := range map[string]string{
		"tampered":   base64.RawURLEncoding.EncodeToString(tampered),
		"truncated":  base64.RawURLEncoding.EncodeToString(raw[:20]),
		"not base64": "!!!",
		"empty":      "",
	} {
		r := e.do(http.MethodPost, "/secrets/restore", tok, fmt.Sprintf(`{"value":%q}`, value)).expect(t, http.StatusBadRequest)
		if code, _ := r.errorCode(t); code != "BadParameter" {
			t.Errorf("%s blob: %s", name, r.body)
		}
	}
	e.do(http.MethodGet, "/secrets/b", tok, "").expect(t, http.StatusNotFound)

	var restored SecretBundle
	e.do(http.MethodPost, "/secrets/restore", tok, body).expect(t, http.StatusOK).decode(t, &restored)
	if restored.ID != v2.ID || restored.Value != nil || restored.ContentType != "ct" {
		t.Errorf("restore: %+v", restored)
	}
	for _, want := range []SecretBundle{v1, v2} {
		var got SecretBundle
		e.do(http.MethodGet, strings.TrimPrefix(want.ID, "https://myvault.vault.azure.net"), tok, "").expect(t, http.StatusOK).decode(t, &got)
		if *got.Value != *want.Value || got.Attributes.Created != want.Attributes.Created {
			t.Errorf("restored version %s: %+v", want.ID, got)
		}
	}
	// The padded form of base64url is accepted too.
	e.do(http.MethodDelete, "/secrets/b", tok, "").expect(t, http.StatusOK)
	e.do(http.MethodDelete, "/deletedsecrets/b", tok, "").expect(t, http.StatusNoContent)
	padded := base64.URLEncoding.EncodeToString(raw)
	e.do(http.MethodPost, "/secrets/restore", tok, fmt.Sprintf(`{"value":%q}`, padded)).expect(t, http.StatusOK)
}

func TestValidation(t *testing.T) {
	e := newEnv(t)
	tok := e.officer
	for _, tc := range []struct {
		name, method, target, body string
		status                     int
	}{
		{"underscore in name", http.MethodPut, "/secrets/bad_name?api-version=7.6", `{"value":"x"}`, 400},
		{"128-character name", http.MethodPut, "/secrets/" + strings.Repeat("a", 128) + "?api-version=7.6", `{"value":"x"}`, 400},
		{"encoded slash in name", http.MethodGet, "/secrets/a%2Fb?api-version=7.6", "", 400},
		{"value too large", http.MethodPut, "/secrets/big?api-version=7.6", `{"value":"` + strings.Repeat("x", maxValueBytes+1) + `"}`, 400},
		{"invalid JSON", http.MethodPut, "/secrets/j?api-version=7.6", `{"value":`, 400},
		{"value of the wrong type", http.MethodPut, "/secrets/j?api-version=7.6", `{"value":42}`, 400},
		{"no value", http.MethodPut, "/secrets/j?api-version=7.6", `{"contentType":"x"}`, 400},
		{"empty body", http.MethodPut, "/secrets/j?api-version=7.6", ``, 400},
		{"16 tags", http.MethodPut, "/secrets/j?api-version=7.6", `{"value":"x","tags":{` + tags(16) + `}}`, 400},
		{"16 tags on PATCH", http.MethodPatch, "/secrets/j?api-version=7.6", `{"tags":{` + tags(16) + `}}`, 400},
		{"nbf not a number", http.MethodPut, "/secrets/j?api-version=7.6", `{"value":"x","attributes":{"nbf":"soon"}}`, 400},
		{"no api-version", http.MethodGet, "/secrets", "", 400},
		{"unknown api-version", http.MethodGet, "/secrets?api-version=7.9", "", 400},
		{"unknown path", http.MethodGet, "/keys?api-version=7.6", "", 404},
		{"wrong method", http.MethodPost, "/secrets/x?api-version=7.6", "", 405},
		{"wrong method on a list", http.MethodDelete, "/secrets?api-version=7.6", "", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.raw(tc.method, testVaultHost, tc.target, tok, tc.body).expect(t, tc.status)
			code, _ := r.errorCode(t)
			if tc.status == 400 && code != "BadParameter" {
				t.Errorf("code %q: %s", code, r.body)
			}
			if strings.Contains(tc.body, "xxxxxxxxxx") && bytes.Contains(r.body, []byte("xxxxxxxxxx")) {
				t.Error("the error echoes the value")
			}
		})
	}

	r := e.do(http.MethodGet, "/secrets?api-version=2099-01-01", tok, "")
	if msg := r.errorMessage(t); !strings.Contains(msg, "2026-04-01") || !strings.Contains(msg, "7.0") {
		t.Errorf("an unknown api-version should list the supported ones: %s", msg)
	}
	e.raw(http.MethodPut, testVaultHost, "/secrets/max?api-version=7.6", tok, `{"value":"`+strings.Repeat("x", maxValueBytes)+`"}`).expect(t, http.StatusOK)
	e.raw(http.MethodPut, testVaultHost, "/secrets/tags?api-version=7.6", tok, `{"value":"x","tags":{`+tags(15)+`}}`).expect(t, http.StatusOK)
	e.raw(http.MethodPut, testVaultHost, "/secrets/empty?api-version=7.6", tok, `{"value":""}`).expect(t, http.StatusOK)
	e.raw(http.MethodPut, testVaultHost, "/secrets/huge?api-version=7.6", tok, `{"value":"`+strings.Repeat("x", maxBodyBytes)+`"}`).expect(t, http.StatusRequestEntityTooLarge)
	// Node percent-encodes the query's keys.
	e.raw(http.MethodGet, testVaultHost, "/secrets/max?api%2Dversion=2025-07-01", tok, "").expect(t, http.StatusOK)
	// Some clients double the slash after the vault URL.
	e.raw(http.MethodGet, testVaultHost, "//secrets/max?api-version=7.0", tok, "").expect(t, http.StatusOK)
}

func tags(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"t%d":"v"`, i))
	}
	return strings.Join(parts, ",")
}

func TestVaults(t *testing.T) {
	e := newEnv(t)
	id := func(name string) string {
		return "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/" + name
	}
	for _, bad := range []string{"ab", "1abc", "abc-", "a--b", "a_bc", strings.Repeat("a", 25)} {
		if _, err := e.svc.CreateVault(bad, testTenant, id(bad)); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("CreateVault(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
	for _, good := range []string{"abc", "kv-1-a", "A" + strings.Repeat("b", 23)} {
		if _, err := e.svc.CreateVault(good, testTenant, id(good)); err != nil {
			t.Errorf("CreateVault(%q) = %v", good, err)
		}
	}
	if _, err := e.svc.CreateVault("MYVAULT", testTenant, id("MYVAULT")); !errors.Is(err, ErrVaultExists) {
		t.Errorf("duplicate vault: %v", err)
	}
	if _, err := e.svc.CreateVault("other", "00000000-0000-0000-0000-0000000000ff", id("other")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("unknown tenant: %v", err)
	}
	if _, err := e.svc.CreateVault("other", testTenant, "/subscriptions/x/vaults/other"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad resource ID: %v", err)
	}
	v, ok := e.svc.Vault("MyVault")
	if !ok || v.URI != "https://myvault.vault.azure.net/" || v.TenantID != testTenant || v.ResourceID != testVaultID || !v.CreatedAt.Equal(e.clock.Now()) {
		t.Errorf("Vault: %+v", v)
	}
	if got := len(e.svc.Vaults()); got != 4 {
		t.Errorf("%d vaults", got)
	}
	must(t, e.svc.DeleteVault("abc"))
	if err := e.svc.DeleteVault("abc"); !errors.Is(err, ErrVaultNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := e.svc.SetSecret("abc", "x", "y"); err == nil {
		t.Error("SetSecret in a deleted vault succeeded")
	}
	e.raw(http.MethodGet, "abc.vault.azure.net", "/secrets?api-version=7.6", e.officer, "").expect(t, http.StatusNotFound)
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyvault.json")
	e := newEnvWith(t, store.Open(path), slog.New(slog.DiscardHandler))
	var b SecretBundle
	e.do(http.MethodPut, "/secrets/kept", e.officer, `{"value":"on disk","tags":{"a":"b"}}`).expect(t, http.StatusOK).decode(t, &b)
	e.do(http.MethodPut, "/secrets/gone", e.officer, `{"value":"x"}`).expect(t, http.StatusOK)
	e.do(http.MethodDelete, "/secrets/gone", e.officer, "").expect(t, http.StatusOK)
	var blob struct{ Value string }
	e.do(http.MethodPost, "/secrets/kept/backup", e.officer, "").expect(t, http.StatusOK).decode(t, &blob)

	again, err := New(Options{Directory: e.dir, Tokens: fakeTokens{e.dir}, Now: e.clock.Now, Store: store.Open(path), Logger: slog.New(slog.DiscardHandler)})
	must(t, err)
	e.svc, e.h = again, again.Handler()
	if v, ok := again.Vault(testVault); !ok || v.ResourceID != testVaultID {
		t.Fatalf("vault lost: %+v", v)
	}
	var got SecretBundle
	e.do(http.MethodGet, "/secrets/kept", e.officer, "").expect(t, http.StatusOK).decode(t, &got)
	if got.ID != b.ID || *got.Value != "on disk" || got.Tags["a"] != "b" {
		t.Errorf("after reopening: %+v", got)
	}
	e.do(http.MethodGet, "/deletedsecrets/gone", e.officer, "").expect(t, http.StatusOK)
	// The backup key survives too: a blob made before the restart restores after it.
	e.do(http.MethodDelete, "/secrets/kept", e.officer, "").expect(t, http.StatusOK)
	e.do(http.MethodDelete, "/deletedsecrets/kept", e.officer, "").expect(t, http.StatusNoContent)
	e.do(http.MethodPost, "/secrets/restore", e.officer, fmt.Sprintf(`{"value":%q}`, blob.Value)).expect(t, http.StatusOK)
}

func TestFailedSaveIsNotAcknowledged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	e := newEnvWith(t, store.Open(filepath.Join(dir, "keyvault.json")), slog.New(slog.DiscardHandler))
	e.do(http.MethodPut, "/secrets/s", e.officer, `{"value":"saved"}`).expect(t, http.StatusOK)
	// Make the state's folder a file: every save from now on fails, even for root.
	must(t, os.RemoveAll(dir))
	must(t, os.WriteFile(dir, nil, 0o600))

	e.do(http.MethodPut, "/secrets/s", e.officer, `{"value":"lost"}`).expect(t, http.StatusInternalServerError)
	e.do(http.MethodPut, "/secrets/new", e.officer, `{"value":"lost"}`).expect(t, http.StatusInternalServerError)
	e.do(http.MethodDelete, "/secrets/s", e.officer, "").expect(t, http.StatusInternalServerError)
	var got SecretBundle
	e.do(http.MethodGet, "/secrets/s", e.officer, "").expect(t, http.StatusOK).decode(t, &got)
	if *got.Value != "saved" {
		t.Errorf("an unsaved write was kept: %q", *got.Value)
	}
	e.do(http.MethodGet, "/secrets/new", e.officer, "").expect(t, http.StatusNotFound)
	var versions listResult[SecretItem]
	e.do(http.MethodGet, "/secrets/s/versions", e.officer, "").expect(t, http.StatusOK).decode(t, &versions)
	if len(versions.Value) != 1 {
		t.Errorf("%d versions, want 1", len(versions.Value))
	}
}

func TestLogging(t *testing.T) {
	var buf bytes.Buffer
	e := newEnvWith(t, nil, slog.New(slog.NewTextHandler(&buf, nil)))
	e.do(http.MethodPut, "/secrets/logged", e.officer, `{"value":"do-not-log-me"}`).expect(t, http.StatusOK)
	e.do(http.MethodGet, "/secrets/logged", "", "").expect(t, http.StatusUnauthorized)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per request, got %q", lines)
	}
	oid := strings.TrimPrefix(e.officer, principalPrefix)
	for _, want := range []string{"service=keyvault", "method=PUT", "host=myvault.vault.azure.net", "path=/secrets/logged", "status=200", "oid=" + oid, "op=SetSecret"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}
	if !strings.Contains(lines[1], "status=401") {
		t.Errorf("log line %q", lines[1])
	}
	if strings.Contains(buf.String(), "do-not-log-me") || strings.Contains(buf.String(), e.officer) {
		t.Errorf("the log holds a value or a token: %s", buf.String())
	}
}

func TestSetSecretGoAPI(t *testing.T) {
	e := newEnv(t)
	b, err := e.svc.SetSecret(testVault, "SecretPassword", "reindeer_flotilla")
	must(t, err)
	if versionedID.FindStringSubmatch(b.ID) == nil || *b.Value != "reindeer_flotilla" {
		t.Errorf("%+v", b)
	}
	if _, err := e.svc.SetSecret(testVault, "bad name", "x"); err == nil {
		t.Error("an invalid name was accepted")
	}
	if _, err := e.svc.SetSecret("nosuchvault", "x", "x"); err == nil {
		t.Error("a missing vault was accepted")
	}
}

func ptr[T any](v T) *T { return &v }

func attrsEqual(a, b SecretAttributes) bool {
	eq := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Enabled == b.Enabled && eq(a.NotBefore, b.NotBefore) && eq(a.Expires, b.Expires) && a.Created == b.Created &&
		a.Updated == b.Updated && a.RecoveryLevel == b.RecoveryLevel && a.RecoverableDays == b.RecoverableDays
}
