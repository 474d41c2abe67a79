package keyvault

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// rbacOp is one REST operation with the state it needs: setup runs without authorization and
// returns the request's body.
type rbacOp struct {
	name, method, path string
	success            int
	setup              func(e *env) string
}

var rbacOps = []rbacOp{
	{"get", http.MethodGet, "/secrets/target", 200, live},
	{"list", http.MethodGet, "/secrets", 200, live},
	{"list versions", http.MethodGet, "/secrets/target/versions", 200, live},
	{"set", http.MethodPut, "/secrets/target", 200, func(*env) string { return `{"value":"new"}` }},
	{"update", http.MethodPatch, "/secrets/target", 200, func(e *env) string { live(e); return `{"contentType":"x"}` }},
	{"delete", http.MethodDelete, "/secrets/target", 200, live},
	{"get deleted", http.MethodGet, "/deletedsecrets/target", 200, deleted},
	{"list deleted", http.MethodGet, "/deletedsecrets", 200, deleted},
	{"recover", http.MethodPost, "/deletedsecrets/target/recover", 200, deleted},
	{"purge", http.MethodDelete, "/deletedsecrets/target", 204, deleted},
	{"backup", http.MethodPost, "/secrets/target/backup", 200, live},
	{"restore", http.MethodPost, "/secrets/restore", 200, func(e *env) string {
		live(e)
		blob, err := e.svc.backupSecret(testVault, "target")
		must(e.t, err)
		deleted(e)
		must(e.t, e.svc.purgeSecret(testVault, "target"))
		return fmt.Sprintf(`{"value":%q}`, base64.RawURLEncoding.EncodeToString(blob))
	}},
}

func live(e *env) string {
	_, err := e.svc.SetSecret(testVault, "target", "value")
	must(e.t, err)
	return ""
}

func deleted(e *env) string {
	live(e)
	_, err := e.svc.deleteSecret(testVault, "target")
	must(e.t, err)
	return ""
}

// TestRBACMatrix checks every role × operation × scope against Azure's built-in role definitions,
// written out here by hand rather than derived from the directory's.
func TestRBACMatrix(t *testing.T) {
	all := "get list listversions set update delete getdeleted listdeleted recover purge backup restore"
	allowed := map[string]string{
		"Key Vault Administrator":   all,
		"Key Vault Secrets Officer": all,
		"Key Vault Secrets User":    "get list listversions getdeleted listdeleted",
		"Key Vault Reader":          "list listversions getdeleted listdeleted",
		"":                          "",
	}
	// Lists and restore are vault-wide: a role on one secret does not grant them.
	vaultWide := map[string]bool{"list": true, "listdeleted": true, "restore": true}
	scopes := map[string]string{
		"vault":        testVaultID,
		"this secret":  testVaultID + "/secrets/target",
		"other secret": testVaultID + "/secrets/other",
	}
	for role, ops := range allowed {
		for scopeName, scope := range scopes {
			for _, op := range rbacOps {
				key := strings.ReplaceAll(op.name, " ", "")
				want := op.success
				grants := strings.Contains(" "+ops+" ", " "+key+" ")
				if !grants || scopeName == "other secret" || scopeName == "this secret" && vaultWide[key] {
					want = http.StatusForbidden
				}
				roleName := role
				if roleName == "" {
					roleName = "no role"
				}
				t.Run(fmt.Sprintf("%s/%s/%s", roleName, scopeName, op.name), func(t *testing.T) {
					e := newEnv(t)
					tok := e.principal("caller", testTenant, role, scope)
					body := op.setup(e)
					r := e.do(op.method, op.path, tok, body)
					if r.status != want {
						t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
					}
					if want == http.StatusForbidden {
						code, inner := r.errorCode(t)
						msg := r.errorMessage(t)
						oid := strings.TrimPrefix(tok, principalPrefix)
						if code != "Forbidden" || inner != "ForbiddenByRbac" ||
							!strings.HasPrefix(msg, "Caller is not authorized to perform action on resource.\r\n") ||
							!strings.Contains(msg, ";oid="+oid+";iss=https://sts.windows.net/"+testTenant+"/\r\n") ||
							!strings.Contains(msg, "Action: 'Microsoft.KeyVault/vaults/secrets/") ||
							!strings.Contains(msg, "Resource: '"+strings.ToLower(testVaultID)) ||
							!strings.Contains(msg, "Vault: myvault;location=") {
							t.Errorf("refusal: %s", r.body)
						}
					}
				})
			}
		}
	}
}

func TestConcurrentSets(t *testing.T) {
	e := newEnv(t)
	const writers, each = 50, 20
	var wg sync.WaitGroup
	errs := make(chan string, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := e.do(http.MethodPut, "/secrets/busy", e.officer, fmt.Sprintf(`{"value":"%d-%d"}`, w, i))
				if r.status != http.StatusOK {
					errs <- string(r.body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ids := e.collect("/secrets/busy/versions?api-version=7.6", 25)
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	if len(ids) != writers*each || len(seen) != writers*each {
		t.Errorf("%d versions listed (%d distinct), want %d", len(ids), len(seen), writers*each)
	}
}
