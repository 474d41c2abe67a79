package entra

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

var sentinels = []error{ErrMalformedToken, ErrBadSignature, ErrExpired, ErrNotYetValid, ErrWrongAudience, ErrWrongIssuer, ErrUnknownPrincipal}

func FuzzValidateAccessToken(f *testing.F) {
	e := newEnv(f)
	at, err := e.svc.IssueAccessToken(e.sp, vaultResource, ACRSecret)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(at.Token, ".")
	f.Add(at.Token)
	f.Add(at.Token + "x")
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + ".." + parts[2])
	f.Add(`eyJhbGciOiJub25lIn0.` + parts[1] + ".")
	f.Add("a.b.c")
	f.Add("")
	pub := &e.svc.signer.key.PublicKey
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := e.svc.ValidateAccessToken(raw, vaultResource)
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		// It validated: it must be an RS256 signature by the signer over its first two parts.
		p := strings.Split(raw, ".")
		sig, derr := base64.RawURLEncoding.DecodeString(p[2])
		sum := sha256.Sum256([]byte(p[0] + "." + p[1]))
		if len(p) != 3 || derr != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) != nil {
			t.Fatalf("a token not signed by the signer validated: %q", raw)
		}
	})
}

func FuzzTokenRequest(f *testing.F) {
	e := newEnv(f)
	f.Add(e.secretForm().Encode())
	f.Add(e.assertionForm(msalAssertion(f, appCert(), e.assertionClaims())).Encode())
	f.Add("grant_type=client_credentials&client_id=" + e.app.AppID + "&scope=%zz")
	f.Add("grant_type=client_credentials&client_id=" + e.app.AppID + "&client_assertion_type=" + url.QueryEscape(jwtBearer) + "&client_assertion=a.b.c&scope=x/.default")
	f.Add("")
	f.Add("&&&===")
	f.Fuzz(func(t *testing.T, body string) {
		w := e.do(http.MethodPost, tokenPath(testTenantID), body, nil)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("answer is not JSON: %v", err)
		}
		if w.Code == http.StatusOK {
			form, _ := url.ParseQuery(body)
			if form.Get("client_secret") != e.secret && form.Get("client_assertion") == "" {
				t.Fatalf("a token without the secret or an assertion: %q", body)
			}
			resource, aerr := resourceFromScope(form.Get("scope"))
			if aerr != nil {
				t.Fatalf("a token for a refused scope: %v", aerr)
			}
			if _, err := e.svc.ValidateAccessToken(m["access_token"].(string), resource); err != nil {
				t.Fatalf("the issued token does not validate: %v", err)
			}
		}
	})
}
