package keyvault

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// fakeCredential hands out "tok-<oid>" tokens and records what the SDK asked for, which is what
// the vault's challenge told it.
type fakeCredential struct {
	token string
	mu    sync.Mutex
	asked []policy.TokenRequestOptions
}

func (c *fakeCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, opts)
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// tlsServer serves h over TLS with a certificate for host, and returns a client that reaches it
// whatever host a URL names. Only tests may do this: lesson code never sets a transport.
func tlsServer(t *testing.T, h http.Handler, host string) *http.Client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	addr := srv.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}}
}

func TestAzsecretsEndToEnd(t *testing.T) {
	e := newEnv(t)
	httpClient := tlsServer(t, e.h, testVaultHost)
	cred := &fakeCredential{token: e.officer}
	client, err := azsecrets.NewClient("https://"+testVaultHost, cred,
		&azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: httpClient}})
	must(t, err)
	ctx := context.Background()

	set, err := client.SetSecret(ctx, "SecretPassword", azsecrets.SetSecretParameters{
		Value: ptr("reindeer_flotilla"), ContentType: ptr("text/plain"), Tags: map[string]*string{"env": ptr("dev")},
	}, nil)
	must(t, err)
	if set.ID.Name() != "SecretPassword" || len(set.ID.Version()) != 32 || *set.Value != "reindeer_flotilla" ||
		*set.Attributes.RecoveryLevel != "Recoverable+Purgeable" || *set.Attributes.RecoverableDays != 90 || !*set.Attributes.Enabled {
		t.Errorf("SetSecret: %+v", set.Secret)
	}
	// The challenge sent the SDK to the vault's tenant for a Key Vault token.
	if len(cred.asked) == 0 || cred.asked[0].TenantID != testTenant || !slices.Equal(cred.asked[0].Scopes, []string{"https://vault.azure.net/.default"}) {
		t.Errorf("token requests: %+v", cred.asked)
	}
	first := set.ID.Version()
	second, err := client.SetSecret(ctx, "SecretPassword", azsecrets.SetSecretParameters{Value: ptr("v2")}, nil)
	must(t, err)

	latest, err := client.GetSecret(ctx, "SecretPassword", "", nil)
	must(t, err)
	if *latest.Value != "v2" || *latest.ID != *second.ID {
		t.Errorf("GetSecret latest: %+v", latest.Secret)
	}
	byVersion, err := client.GetSecret(ctx, "SecretPassword", first, nil)
	must(t, err)
	if *byVersion.Value != "reindeer_flotilla" || *byVersion.Tags["env"] != "dev" {
		t.Errorf("GetSecret by version: %+v", byVersion.Secret)
	}

	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	upd, err := client.UpdateSecretProperties(ctx, "SecretPassword", first, azsecrets.UpdateSecretPropertiesParameters{
		ContentType: ptr("updated"), SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp, Enabled: ptr(false)},
	}, nil)
	must(t, err)
	if upd.Value != nil || *upd.ContentType != "updated" || !upd.Attributes.Expires.Equal(exp) || *upd.Attributes.Enabled {
		t.Errorf("UpdateSecretProperties: %+v", upd.Secret)
	}
	_, err = client.GetSecret(ctx, "SecretPassword", first, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "Forbidden" {
		t.Errorf("GetSecret of a disabled version: %v", err)
	}

	for i := range 30 {
		_, err := client.SetSecret(ctx, fmt.Sprintf("bulk-%02d", i), azsecrets.SetSecretParameters{Value: ptr("x")}, nil)
		must(t, err)
	}
	var names []string
	pages := 0
	for pager := client.NewListSecretPropertiesPager(nil); pager.More(); pages++ {
		page, err := pager.NextPage(ctx)
		must(t, err)
		for _, p := range page.Value {
			names = append(names, p.ID.Name())
		}
	}
	if len(names) != 31 || pages != 2 || !slices.Contains(names, "SecretPassword") {
		t.Errorf("ListSecretProperties: %d names in %d pages", len(names), pages)
	}
	var versions []string
	for pager := client.NewListSecretPropertiesVersionsPager("SecretPassword", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		must(t, err)
		for _, p := range page.Value {
			versions = append(versions, p.ID.Version())
		}
	}
	if !slices.Equal(versions, []string{first, second.ID.Version()}) {
		t.Errorf("versions %v", versions)
	}

	del, err := client.DeleteSecret(ctx, "SecretPassword", nil)
	must(t, err)
	if *del.RecoveryID != "https://myvault.vault.azure.net/deletedsecrets/SecretPassword" || del.DeletedDate == nil ||
		!del.ScheduledPurgeDate.Equal(del.DeletedDate.AddDate(0, 0, 90)) {
		t.Errorf("DeleteSecret: %+v", del.DeletedSecret)
	}
	gotDeleted, err := client.GetDeletedSecret(ctx, "SecretPassword", nil)
	must(t, err)
	if gotDeleted.ID.Name() != "SecretPassword" {
		t.Errorf("GetDeletedSecret: %+v", gotDeleted.DeletedSecret)
	}
	var deletedNames []string
	for pager := client.NewListDeletedSecretPropertiesPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		must(t, err)
		for _, p := range page.Value {
			deletedNames = append(deletedNames, p.ID.Name())
		}
	}
	if !slices.Equal(deletedNames, []string{"SecretPassword"}) {
		t.Errorf("ListDeletedSecretProperties: %v", deletedNames)
	}
	_, err = client.SetSecret(ctx, "SecretPassword", azsecrets.SetSecretParameters{Value: ptr("x")}, nil)
	if !errors.As(err, &re) || re.StatusCode != http.StatusConflict {
		t.Errorf("SetSecret on a deleted name: %v", err)
	}
	recovered, err := client.RecoverDeletedSecret(ctx, "SecretPassword", nil)
	must(t, err)
	if *recovered.ID != *second.ID {
		t.Errorf("RecoverDeletedSecret: %+v", recovered.Secret)
	}

	backup, err := client.BackupSecret(ctx, "SecretPassword", nil)
	must(t, err)
	_, err = client.DeleteSecret(ctx, "SecretPassword", nil)
	must(t, err)
	_, err = client.PurgeDeletedSecret(ctx, "SecretPassword", nil)
	must(t, err)
	_, err = client.GetDeletedSecret(ctx, "SecretPassword", nil)
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != "SecretNotFound" {
		t.Errorf("GetDeletedSecret after purge: %v", err)
	}
	restored, err := client.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: backup.Value}, nil)
	must(t, err)
	if *restored.ID != *second.ID {
		t.Errorf("RestoreSecret: %+v", restored.Secret)
	}
	again, err := client.GetSecret(ctx, "SecretPassword", "", nil)
	must(t, err)
	if *again.Value != "v2" {
		t.Errorf("after restore: %+v", again.Secret)
	}

	// A principal without a role is refused by RBAC, as on Azure.
	stranger, err := azsecrets.NewClient("https://"+testVaultHost, &fakeCredential{token: e.principal("stranger", testTenant, "", "")},
		&azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: httpClient}})
	must(t, err)
	_, err = stranger.GetSecret(ctx, "SecretPassword", "", nil)
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "Forbidden" {
		t.Errorf("GetSecret without a role: %v", err)
	}
}
