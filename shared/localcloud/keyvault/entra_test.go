package keyvault

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
)

// TestRealTokens runs the vault behind the local Entra ID's real, signed tokens: what the fake
// validator stands for elsewhere holds for the real one.
func TestRealTokens(t *testing.T) {
	e := newEnv(t)
	signer, err := entra.NewSigner()
	must(t, err)
	idp := entra.New(entra.Options{Directory: e.dir, Signer: signer, Now: e.clock.Now})
	e.svc.tokens = idp
	issue := func(token, resource string) string {
		t.Helper()
		sp, ok := e.dir.ServicePrincipal(strings.TrimPrefix(token, principalPrefix))
		if !ok {
			t.Fatal("no principal")
		}
		at, err := idp.IssueAccessToken(sp, resource, entra.ACRSecret)
		must(t, err)
		return at.Token
	}
	good := issue(e.officer, Audience)
	e.do(http.MethodPut, "/secrets/s", good, `{"value":"x"}`).expect(t, http.StatusOK)

	foreign := e.principal("foreign", otherTenant, "Key Vault Secrets Officer", testVaultID)
	tampered := good[:len(good)-4] + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, good[len(good)-4:])
	for _, tc := range []struct{ name, token, want string }{
		{"management token", issue(e.officer, "https://management.azure.com"), "AKV10022: Invalid audience."},
		{"another tenant", issue(foreign, Audience), "AKV10032: Invalid issuer."},
		{"tampered signature", tampered, "AKV10046:"},
		{"not a JWT", "not-a-jwt", "[MalformedToken]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/secrets/s", tc.token, "").expect(t, http.StatusUnauthorized)
			if msg := r.errorMessage(t); !strings.HasPrefix(msg, tc.want) || r.header.Get("WWW-Authenticate") != wantChallenge {
				t.Errorf("message %q, want %q…", msg, tc.want)
			}
		})
	}
	e.clock.Advance(2 * time.Hour)
	r := e.do(http.MethodGet, "/secrets/s", good, "").expect(t, http.StatusUnauthorized)
	if msg := r.errorMessage(t); msg != "[TokenExpired] Error validating token: 'S2S12086'." {
		t.Errorf("expired: %q", msg)
	}
}
