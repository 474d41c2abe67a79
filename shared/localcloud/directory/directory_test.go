package directory

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
)

const tenantID = "10ca1c10-0000-4000-a000-000000000000"

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newDir(t *testing.T) (*Directory, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	d, err := New(Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddTenant(tenantID, "Local"); err != nil {
		t.Fatal(err)
	}
	return d, c
}

func registerApp(t *testing.T, d *Directory) (Application, ServicePrincipal) {
	t.Helper()
	app, err := d.CreateApplication(tenantID, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := d.CreateServicePrincipal(tenantID, app.AppID)
	if err != nil {
		t.Fatal(err)
	}
	return app, sp
}

func TestClientSecretIsShownOnceAndOnlyItsHashIsKept(t *testing.T) {
	d, _ := newDir(t)
	app, sp := registerApp(t, d)
	pc, value, err := d.AddPassword(tenantID, app.AppID, SecretOptions{DisplayName: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	if len(value) != 40 || value[3:6] != "8Q~" || pc.Hint != value[:3] {
		t.Fatalf("secret %q (hint %q) is not shaped like Entra's", value, pc.Hint)
	}
	got, _ := d.Application(tenantID, app.AppID)
	for _, p := range got.PasswordCredentials {
		if string(p.Hash) == value || len(p.Hash) != sha256.Size {
			t.Fatalf("stored credential is not a hash: %+v", p)
		}
	}
	who, err := d.VerifyClientSecret(tenantID, app.AppID, value)
	if err != nil || who.ObjectID != sp.ObjectID {
		t.Fatalf("VerifyClientSecret = %+v, %v; want principal %s", who, err, sp.ObjectID)
	}
	if _, err := d.VerifyClientSecret(tenantID, app.AppID, value+"x"); !errors.Is(err, ErrInvalidClientSecret) {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestSignInErrorsComeInEntrasOrder(t *testing.T) {
	d, _ := newDir(t)
	app, err := d.CreateApplication(tenantID, "no-sp", "")
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := d.AddPassword(tenantID, app.AppID, SecretOptions{})
	cases := []struct {
		tenant, app string
		want        error
	}{
		{"20ca1c10-0000-4000-a000-000000000000", app.AppID, ErrTenantNotFound},
		{tenantID, "30ca1c10-0000-4000-a000-000000000000", ErrApplicationNotFound},
		{tenantID, app.AppID, ErrServicePrincipalNotFound},
	}
	for _, c := range cases {
		if _, err := d.VerifyClientSecret(c.tenant, c.app, v); !errors.Is(err, c.want) {
			t.Errorf("VerifyClientSecret(%s, %s) = %v, want %v", c.tenant, c.app, err, c.want)
		}
	}
}

func TestExpiredSecretIsReportedAsExpired(t *testing.T) {
	d, c := newDir(t)
	app, _ := registerApp(t, d)
	_, v, err := d.AddPassword(tenantID, app.AppID, SecretOptions{End: c.t.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(2 * time.Hour)
	if _, err := d.VerifyClientSecret(tenantID, app.AppID, v); !errors.Is(err, ErrClientSecretExpired) {
		t.Fatalf("err = %v, want ErrClientSecretExpired", err)
	}
}

func TestResetPasswordsRevokesTheOldSecret(t *testing.T) {
	d, _ := newDir(t)
	app, _ := registerApp(t, d)
	_, old, _ := d.AddPassword(tenantID, app.AppID, SecretOptions{})
	_, fresh, err := d.ResetPasswords(tenantID, app.AppID, SecretOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.VerifyClientSecret(tenantID, app.AppID, old); !errors.Is(err, ErrInvalidClientSecret) {
		t.Fatalf("old secret still works: %v", err)
	}
	if _, err := d.VerifyClientSecret(tenantID, app.AppID, fresh); err != nil {
		t.Fatalf("new secret refused: %v", err)
	}
}

func selfSigned(t *testing.T, key any, pub any) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app"},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCertificateIsFoundByEitherThumbprint(t *testing.T) {
	d, _ := newDir(t)
	app, sp := registerApp(t, d)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der := selfSigned(t, key, &key.PublicKey)
	kc, err := d.AddCertificate(tenantID, app.AppID, der, "cert")
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range [][]byte{kc.ThumbprintSHA256, kc.ThumbprintSHA1} {
		got, who, err := d.CertificateByThumbprint(tenantID, app.AppID, tp)
		if err != nil || who.ObjectID != sp.ObjectID || got.KeyID != kc.KeyID {
			t.Fatalf("lookup by %x: %v", tp, err)
		}
	}
	if _, _, err := d.CertificateByThumbprint(tenantID, app.AppID, make([]byte, 32)); !errors.Is(err, ErrCertificateNotFound) {
		t.Fatalf("unknown thumbprint: %v", err)
	}
	if len(kc.Thumbprint()) != 40 {
		t.Fatalf("thumbprint %q is not 40 hex digits", kc.Thumbprint())
	}
}

func TestRBACGrantsOnlyWhatTheRoleAllowsWhereItIsAssigned(t *testing.T) {
	d, _ := newDir(t)
	_, sp := registerApp(t, d)
	vault := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"
	secret := vault + "/secrets/SecretPassword"
	other := vault + "/secrets/Other"
	if d.IsAllowed(sp.ObjectID, ActionGetSecret, secret) {
		t.Fatal("allowed before any role assignment")
	}
	ra, err := d.AssignRole(sp.ObjectID, "Key Vault Secrets User", secret)
	if err != nil {
		t.Fatal(err)
	}
	if !d.IsAllowed(sp.ObjectID, ActionGetSecret, secret) {
		t.Fatal("role on the secret does not grant getSecret on it")
	}
	if d.IsAllowed(sp.ObjectID, ActionGetSecret, other) {
		t.Fatal("role on one secret grants another")
	}
	if d.IsAllowed(sp.ObjectID, ActionSetSecret, secret) {
		t.Fatal("Secrets User may set secrets")
	}
	again, err := d.AssignRole(sp.ObjectID, KeyVaultSecretsUser.ID, secret)
	if err != nil || again.Name != ra.Name {
		t.Fatalf("assigning the same role twice made a new assignment: %v", err)
	}
	if err := d.DeleteRoleAssignment(ra.ID); err != nil {
		t.Fatal(err)
	}
	if d.IsAllowed(sp.ObjectID, ActionGetSecret, secret) {
		t.Fatal("allowed after the assignment was deleted")
	}
	if _, err := d.AssignRole(sp.ObjectID, "Key Vault Reader", vault); err != nil {
		t.Fatal(err)
	}
	if !d.IsAllowed(sp.ObjectID, ActionReadMetadata, other) || d.IsAllowed(sp.ObjectID, ActionGetSecret, other) {
		t.Fatal("Key Vault Reader must read metadata and never values")
	}
}

func TestRoleWildcardsMatchAsAzureDoes(t *testing.T) {
	cases := []struct {
		role   RoleDefinition
		action string
		want   bool
	}{
		{KeyVaultAdministrator, ActionPurge, true},
		{KeyVaultSecretsOfficer, ActionRestore, true},
		{KeyVaultSecretsOfficer, "Microsoft.KeyVault/vaults/keys/read", false},
		{KeyVaultReader, "Microsoft.KeyVault/vaults/keys/read", true},
		{KeyVaultReader, ActionGetSecret, false},
		{KeyVaultSecretsUser, ActionDeleteSecret, false},
	}
	for _, c := range cases {
		if got := c.role.Allows(c.action); got != c.want {
			t.Errorf("%s allows %s = %v, want %v", c.role.RoleName, c.action, got, c.want)
		}
	}
	if !AcrPull.AllowsAction(ActionAcrPull) || AcrPull.Allows(ActionGetSecret) || KeyVaultAdministrator.AllowsAction(ActionAcrPull) {
		t.Fatal("AcrPull must grant pulls and nothing in Key Vault")
	}
	if !ScopeCovers("/subscriptions/S/resourceGroups/RG", "/subscriptions/s/resourcegroups/rg/providers/x") || ScopeCovers("/a/b", "/a/bc") {
		t.Fatal("scope matching is wrong")
	}
}

func TestSystemAssignedIdentityGetsANewPrincipalEachTimeItIsEnabled(t *testing.T) {
	d, _ := newDir(t)
	site := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/web"
	seen := map[string]bool{}
	for range 3 {
		sp, err := d.EnableSystemAssignedIdentity(tenantID, site)
		if err != nil {
			t.Fatal(err)
		}
		if seen[sp.ObjectID] || sp.ServicePrincipalType != TypeManagedIdentity || sp.ManagedIdentityResourceID != site {
			t.Fatalf("enable gave %+v", sp)
		}
		seen[sp.ObjectID] = true
		if again, _ := d.EnableSystemAssignedIdentity(tenantID, site); again.ObjectID != sp.ObjectID {
			t.Fatal("enabling an enabled identity replaced it")
		}
		if err := d.DisableSystemAssignedIdentity(site); err != nil {
			t.Fatal(err)
		}
		if _, ok := d.ServicePrincipal(sp.ObjectID); ok {
			t.Fatal("disabling the identity left its service principal")
		}
	}
}

func TestDeletingAResourceDeletesItsIdentity(t *testing.T) {
	d, _ := newDir(t)
	site := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/web"
	uai := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"
	sys, _ := d.EnableSystemAssignedIdentity(tenantID, site)
	user, err := d.CreateUserAssignedIdentity(tenantID, uai)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AssignUserAssignedIdentity(tenantID, site, uai); err != nil {
		t.Fatal(err)
	}
	id := d.IdentityOf(site)
	if id.SystemAssigned == nil || len(id.UserAssigned) != 1 || id.UserAssigned[0].ObjectID != user.ObjectID {
		t.Fatalf("IdentityOf = %+v", id)
	}
	if err := d.DeleteResource(site); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.ServicePrincipal(sys.ObjectID); ok {
		t.Fatal("system-assigned principal survived its resource")
	}
	if _, ok := d.ServicePrincipal(user.ObjectID); !ok {
		t.Fatal("a user-assigned identity must outlive the resources it is attached to")
	}
}

func TestStateSurvivesReopening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "directory.json")
	d, err := New(Options{Store: store.Open(path)})
	if err != nil {
		t.Fatal(err)
	}
	d.AddTenant(tenantID, "Local")
	app, _ := registerApp(t, d)
	_, v, _ := d.AddPassword(tenantID, app.AppID, SecretOptions{})
	d2, err := New(Options{Store: store.Open(path)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d2.VerifyClientSecret(tenantID, app.AppID, v); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
}

func TestConcurrentWritesAreAllKept(t *testing.T) {
	d, _ := newDir(t)
	app, _ := registerApp(t, d)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, _, err := d.AddPassword(tenantID, app.AppID, SecretOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := d.Application(tenantID, app.AppID)
	if len(got.PasswordCredentials) != 20 {
		t.Fatalf("%d secrets kept, want 20", len(got.PasswordCredentials))
	}
}

func TestOnlyRSACertificatesAreAccepted(t *testing.T) {
	d, _ := newDir(t)
	app, _ := registerApp(t, d)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, der := range map[string][]byte{"junk": []byte("junk"), "ECDSA": selfSigned(t, ec, &ec.PublicKey)} {
		if _, err := d.AddCertificate(tenantID, app.AppID, der, ""); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s certificate: err = %v, want ErrInvalidArgument", name, err)
		}
	}
}
