package entra

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// goodClaims are the claims IssueAccessToken would put in a token for e's app.
func (e *env) goodClaims() accessTokenClaims {
	now := e.clock.Now()
	iss := AccessTokenIssuer(testTenantID)
	return accessTokenClaims{
		Aud: vaultResource, Iss: iss,
		Iat: jwt.NewNumericDate(now), Nbf: jwt.NewNumericDate(now), Exp: jwt.NewNumericDate(now.Add(time.Hour)),
		AppID: e.app.AppID, AppIDACR: ACRSecret, IDP: iss, IDTyp: "app",
		OID: e.sp.ObjectID, Sub: e.sp.ObjectID, TID: testTenantID, UTI: "uti", Ver: "1.0",
	}
}

func (e *env) sign(t *testing.T, c accessTokenClaims) string {
	return signClaims(t, jwt.SigningMethodRS256, e.svc.signer.key, e.svc.signer.KeyID(), c)
}

func TestValidateAccessToken(t *testing.T) {
	e := newEnv(t)
	at, err := e.svc.IssueAccessToken(e.sp, vaultResource, ACRSecret)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.clock.Now().Add(time.Hour); !at.ExpiresOn.Equal(want) {
		t.Errorf("ExpiresOn = %v, want %v", at.ExpiresOn, want)
	}
	for _, aud := range []string{vaultResource, vaultResource + "/"} {
		c, err := e.svc.ValidateAccessToken(at.Token, aud)
		if err != nil {
			t.Fatalf("audience %q: %v", aud, err)
		}
		now := e.clock.Now()
		want := Claims{
			TenantID: testTenantID, ObjectID: e.sp.ObjectID, AppID: e.app.AppID, AppIDACR: ACRSecret,
			Audience: vaultResource, Issuer: "https://sts.windows.net/" + testTenantID + "/",
			IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Hour),
		}
		if *c != want {
			t.Errorf("claims\n got %+v\nwant %+v", *c, want)
		}
	}

	// The raw claims look like Entra ID's v1 access tokens.
	parts := strings.Split(at.Token, ".")
	var header, payload map[string]any
	for i, v := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != e.svc.signer.KeyID() {
		t.Errorf("header = %v", header)
	}
	for k, want := range map[string]any{
		"aud": vaultResource, "iss": "https://sts.windows.net/" + testTenantID + "/", "idp": "https://sts.windows.net/" + testTenantID + "/",
		"appid": e.app.AppID, "appidacr": "1", "idtyp": "app", "oid": e.sp.ObjectID, "sub": e.sp.ObjectID,
		"tid": testTenantID, "ver": "1.0",
	} {
		if payload[k] != want {
			t.Errorf("claim %s = %v, want %v", k, payload[k], want)
		}
	}
	if _, ok := payload["xms_mirid"]; ok {
		t.Error("an app registration's token carries xms_mirid")
	}
	if uti, _ := payload["uti"].(string); len(uti) < 16 {
		t.Errorf("uti = %q", uti)
	}
}

func TestIssueAccessTokenManagedIdentity(t *testing.T) {
	e := newEnv(t)
	rid := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"
	mi, err := e.dir.CreateUserAssignedIdentity(testTenantID, rid)
	if err != nil {
		t.Fatal(err)
	}
	at, err := e.svc.IssueAccessToken(mi, vaultResource, ACRCertificate)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.ValidateAccessToken(at.Token, vaultResource)
	if err != nil {
		t.Fatal(err)
	}
	if c.MIResourceID != rid || c.AppIDACR != "2" || c.ObjectID != mi.ObjectID || c.AppID != mi.AppID {
		t.Errorf("claims = %+v", c)
	}
	if e.svc.TokenRequests() != 0 {
		t.Error("IssueAccessToken counted as a token endpoint request")
	}
}

func TestIssueAccessTokenRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.IssueAccessToken(e.sp, "", ACRSecret); err == nil {
		t.Error("no resource: no error")
	}
	if _, err := e.svc.IssueAccessToken(e.sp, vaultResource, "0"); err == nil {
		t.Error("appidacr 0: no error")
	}
	sp := e.sp
	sp.TenantID = ""
	if _, err := e.svc.IssueAccessToken(sp, vaultResource, ACRSecret); err == nil {
		t.Error("no tenant: no error")
	}
}

func TestTokenLifetimeOption(t *testing.T) {
	e := newEnv(t)
	svc := New(Options{Directory: e.dir, Signer: e.svc.signer, Now: e.clock.Now, TokenLifetime: 10 * time.Minute})
	at, err := svc.IssueAccessToken(e.sp, vaultResource, ACRSecret)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.clock.Now().Add(10 * time.Minute); !at.ExpiresOn.Equal(want) {
		t.Errorf("ExpiresOn = %v, want %v", at.ExpiresOn, want)
	}
}

// TestForgedTokens is the resource's side of the lesson: every way to fake or reuse a token
// fails with its own reason.
func TestForgedTokens(t *testing.T) {
	e := newEnv(t)
	good := e.sign(t, e.goodClaims())
	if _, err := e.svc.ValidateAccessToken(good, vaultResource); err != nil {
		t.Fatalf("the unforged token is refused: %v", err)
	}
	parts := strings.Split(good, ".")
	pubDER, err := x509.MarshalPKIXPublicKey(&e.svc.signer.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	edited := func(f func(*accessTokenClaims)) accessTokenClaims {
		c := e.goodClaims()
		f(&c)
		return c
	}
	deletedApp, err := e.dir.CreateApplication(testTenantID, "deleted", "")
	if err != nil {
		t.Fatal(err)
	}
	deletedSP, err := e.dir.CreateServicePrincipal(testTenantID, deletedApp.AppID)
	if err != nil {
		t.Fatal(err)
	}
	deletedToken, err := e.svc.IssueAccessToken(deletedSP, vaultResource, ACRSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.dir.DeleteApplication(testTenantID, deletedApp.AppID); err != nil {
		t.Fatal(err)
	}
	kid := e.svc.signer.KeyID()

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", signClaims(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, e.goodClaims()), ErrBadSignature},
		{"HS256 keyed with the public key", signClaims(t, jwt.SigningMethodHS256, pubDER, kid, e.goodClaims()), ErrBadSignature},
		{"another RSA key, same kid", signClaims(t, jwt.SigningMethodRS256, otherRSAKey(), kid, e.goodClaims()), ErrBadSignature},
		{"unknown kid", signClaims(t, jwt.SigningMethodRS256, e.svc.signer.key, "another-kid", e.goodClaims()), ErrBadSignature},
		{"no kid", signClaims(t, jwt.SigningMethodRS256, e.svc.signer.key, "", e.goodClaims()), ErrBadSignature},
		{"PS256 by the right key", signClaims(t, jwt.SigningMethodPS256, e.svc.signer.key, kid, e.goodClaims()), ErrBadSignature},
		{"tampered payload", func() string {
			forged, _ := json.Marshal(edited(func(c *accessTokenClaims) { c.OID, c.Sub = deletedSP.ObjectID, deletedSP.ObjectID }))
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]
		}(), ErrBadSignature},
		{"expired", e.sign(t, edited(func(c *accessTokenClaims) {
			c.Exp = jwt.NewNumericDate(e.clock.Now().Add(-6 * time.Minute))
		})), ErrExpired},
		{"not yet valid", e.sign(t, edited(func(c *accessTokenClaims) {
			c.Nbf = jwt.NewNumericDate(e.clock.Now().Add(6 * time.Minute))
		})), ErrNotYetValid},
		{"wrong audience", e.sign(t, edited(func(c *accessTokenClaims) { c.Aud = "https://management.azure.com" })), ErrWrongAudience},
		{"empty audience", e.sign(t, edited(func(c *accessTokenClaims) { c.Aud = "" })), ErrWrongAudience},
		{"issuer on another host", e.sign(t, edited(func(c *accessTokenClaims) { c.Iss = "https://sts.example.com/" + testTenantID + "/" })), ErrWrongIssuer},
		{"v2 issuer", e.sign(t, edited(func(c *accessTokenClaims) { c.Iss = "https://login.microsoftonline.com/" + testTenantID + "/v2.0" })), ErrWrongIssuer},
		{"issuer of another tenant", e.sign(t, edited(func(c *accessTokenClaims) { c.Iss = AccessTokenIssuer(otherTenantID) })), ErrWrongIssuer},
		{"tenant that does not exist", e.sign(t, edited(func(c *accessTokenClaims) {
			c.TID = "99999999-9999-9999-9999-999999999999"
			c.Iss = AccessTokenIssuer(c.TID)
		})), ErrWrongIssuer},
		{"principal moved to another tenant", e.sign(t, edited(func(c *accessTokenClaims) {
			c.TID = otherTenantID
			c.Iss = AccessTokenIssuer(otherTenantID)
		})), ErrUnknownPrincipal},
		{"principal deleted", deletedToken.Token, ErrUnknownPrincipal},
		{"appid of another app", e.sign(t, edited(func(c *accessTokenClaims) { c.AppID = deletedApp.AppID })), ErrUnknownPrincipal},
		{"truncated", good[:len(good)-10], ErrBadSignature},
		{"two parts", parts[0] + "." + parts[1], ErrMalformedToken},
		{"empty", "", ErrMalformedToken},
		{"garbage base64", "!!!.@@@.###", ErrMalformedToken},
		{"audience as an array", signClaims(t, jwt.SigningMethodRS256, e.svc.signer.key, kid, jwt.MapClaims{
			"aud": []string{vaultResource}, "iss": AccessTokenIssuer(testTenantID), "tid": testTenantID,
			"oid": e.sp.ObjectID, "appid": e.app.AppID, "exp": e.clock.Now().Add(time.Hour).Unix(),
		}), ErrMalformedToken},
		{"signature with a byte appended", good + "x", ErrBadSignature},
		{"oversized", strings.Repeat("a", maxAccessTokenLength+1), ErrMalformedToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.svc.ValidateAccessToken(tt.token, vaultResource)
			if !errors.Is(err, tt.want) || c != nil {
				t.Fatalf("got %v (claims %v), want %v", err, c, tt.want)
			}
			if len(tt.token) > 20 && strings.Contains(err.Error(), tt.token) {
				t.Error("the error quotes the token")
			}
		})
	}

	t.Run("expired by the clock", func(t *testing.T) {
		e.clock.Advance(time.Hour + 6*time.Minute)
		defer e.clock.Advance(-(time.Hour + 6*time.Minute))
		if _, err := e.svc.ValidateAccessToken(good, vaultResource); !errors.Is(err, ErrExpired) {
			t.Fatalf("got %v, want ErrExpired", err)
		}
	})
	t.Run("within the clock skew", func(t *testing.T) {
		e.clock.Advance(time.Hour + 4*time.Minute)
		defer e.clock.Advance(-(time.Hour + 4*time.Minute))
		if _, err := e.svc.ValidateAccessToken(good, vaultResource); err != nil {
			t.Fatalf("got %v, want the 5 minutes' skew to accept it", err)
		}
	})
}

// TestRememberedSignatureStillChecksExpiryAndPrincipal: validating the same token again skips
// only the signature check; expiry, audience and the principal's existence are checked anew.
func TestRememberedSignatureStillChecksExpiryAndPrincipal(t *testing.T) {
	e := newEnv(t)
	at, err := e.svc.IssueAccessToken(e.sp, vaultResource, ACRSecret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ValidateAccessToken(at.Token, vaultResource); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ValidateAccessToken(at.Token, "https://management.azure.com/"); !errors.Is(err, ErrWrongAudience) {
		t.Fatalf("remembered token, other audience: %v, want ErrWrongAudience", err)
	}
	e.clock.Advance(2 * time.Hour)
	if _, err := e.svc.ValidateAccessToken(at.Token, vaultResource); !errors.Is(err, ErrExpired) {
		t.Fatalf("remembered token after its expiry: %v, want ErrExpired", err)
	}
	fresh, err := e.svc.IssueAccessToken(e.sp, vaultResource, ACRSecret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ValidateAccessToken(fresh.Token, vaultResource); err != nil {
		t.Fatal(err)
	}
	if err := e.dir.DeleteApplication(testTenantID, e.app.AppID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ValidateAccessToken(fresh.Token, vaultResource); !errors.Is(err, ErrUnknownPrincipal) {
		t.Fatalf("remembered token of a deleted principal: %v, want ErrUnknownPrincipal", err)
	}
}
