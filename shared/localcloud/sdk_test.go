package localcloud_test

// These tests run unmodified Azure SDK programs as child processes with nothing but the
// environment the local cloud hands out, the way an app runs on Azure: no custom transport, no
// disabled checks. The child is this test binary itself, re-executed with SDKPROBE set.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/launch"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

func TestMain(m *testing.M) {
	if kind := os.Getenv("SDKPROBE"); kind != "" {
		if err := probe(kind, os.Getenv("SDKPROBE_OPS")); err != nil {
			fmt.Fprintln(os.Stderr, "PROBE FAILED:", err)
			os.Exit(1)
		}
		fmt.Println("PROBE OK")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// probe is what a user's program does: build a credential, a client, and use the vault.
func probe(kind, ops string) error {
	var cred azcore.TokenCredential
	var err error
	switch kind {
	case "secret":
		cred, err = azidentity.NewClientSecretCredential(os.Getenv("AZURE_TENANT_ID"), os.Getenv("AZURE_CLIENT_ID"), os.Getenv("AZURE_CLIENT_SECRET"), nil)
	case "certificate":
		var pem []byte
		if pem, err = os.ReadFile(os.Getenv("AZURE_CLIENT_CERTIFICATE_PATH")); err == nil {
			certs, key, perr := azidentity.ParseCertificates(pem, nil)
			if perr != nil {
				return perr
			}
			cred, err = azidentity.NewClientCertificateCredential(os.Getenv("AZURE_TENANT_ID"), os.Getenv("AZURE_CLIENT_ID"), certs, key, nil)
		}
	case "managed":
		cred, err = azidentity.NewManagedIdentityCredential(nil)
	case "managed-user":
		cred, err = azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(os.Getenv("PROBE_CLIENT_ID"))})
	case "default":
		cred, err = azidentity.NewDefaultAzureCredential(nil)
	default:
		return fmt.Errorf("unknown probe %q", kind)
	}
	if err != nil {
		return err
	}
	client, err := azsecrets.NewClient(os.Getenv("AZURE_KEYVAULT_URL"), cred, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := client.GetSecret(ctx, localcloud.SecretName, "", nil)
	if err != nil {
		return err
	}
	if *got.Value != localcloud.SecretValue || got.ID.Name() != localcloud.SecretName {
		return fmt.Errorf("GetSecret = %q (%s)", *got.Value, got.ID.Name())
	}
	if ops == "all" {
		return everyOperation(ctx, client)
	}
	return nil
}

func check(cond bool, format string, args ...any) error {
	if !cond {
		return fmt.Errorf(format, args...)
	}
	return nil
}

// everyOperation round-trips each operation of the azsecrets client.
func everyOperation(ctx context.Context, c *azsecrets.Client) error {
	const name = "probe-secret"
	v1, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("one"), ContentType: to.Ptr("text/plain"), SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(true)}}, nil)
	if err != nil {
		return fmt.Errorf("SetSecret: %w", err)
	}
	if _, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("two")}, nil); err != nil {
		return err
	}
	old, err := c.GetSecret(ctx, name, v1.ID.Version(), nil)
	if err != nil || *old.Value != "one" {
		return fmt.Errorf("GetSecret by version: %v", err)
	}
	upd, err := c.UpdateSecretProperties(ctx, name, v1.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{Tags: map[string]*string{"env": to.Ptr("local")}}, nil)
	if err != nil || *upd.Tags["env"] != "local" || upd.Value != nil {
		return fmt.Errorf("UpdateSecretProperties: %v", err)
	}
	for i := range 30 {
		if _, err := c.SetSecret(ctx, fmt.Sprintf("page-%02d", i), azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil); err != nil {
			return err
		}
	}
	count := 0
	for p := c.NewListSecretPropertiesPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		count += len(page.Value)
	}
	if err := check(count == 32, "listed %d secrets, want 32", count); err != nil {
		return err
	}
	versions := 0
	for p := c.NewListSecretPropertiesVersionsPager(name, nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list versions: %w", err)
		}
		versions += len(page.Value)
	}
	if err := check(versions == 2, "listed %d versions, want 2", versions); err != nil {
		return err
	}
	backup, err := c.BackupSecret(ctx, name, nil)
	if err != nil {
		return fmt.Errorf("BackupSecret: %w", err)
	}
	del, err := c.DeleteSecret(ctx, name, nil)
	if err != nil || del.RecoveryID == nil {
		return fmt.Errorf("DeleteSecret: %v", err)
	}
	if _, err := c.GetDeletedSecret(ctx, name, nil); err != nil {
		return fmt.Errorf("GetDeletedSecret: %w", err)
	}
	deleted := 0
	for p := c.NewListDeletedSecretPropertiesPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		deleted += len(page.Value)
	}
	if err := check(deleted == 1, "listed %d deleted secrets, want 1", deleted); err != nil {
		return err
	}
	if _, err := c.RecoverDeletedSecret(ctx, name, nil); err != nil {
		return fmt.Errorf("RecoverDeletedSecret: %w", err)
	}
	if got, err := c.GetSecret(ctx, name, "", nil); err != nil || *got.Value != "two" {
		return fmt.Errorf("after recovery: %v", err)
	}
	if _, err := c.DeleteSecret(ctx, name, nil); err != nil {
		return err
	}
	if _, err := c.PurgeDeletedSecret(ctx, name, nil); err != nil {
		return fmt.Errorf("PurgeDeletedSecret: %w", err)
	}
	var re *azcore.ResponseError
	if _, err := c.GetDeletedSecret(ctx, name, nil); !errors.As(err, &re) || re.StatusCode != 404 {
		return fmt.Errorf("after purge: %v", err)
	}
	restored, err := c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: backup.Value}, nil)
	if err != nil || restored.ID.Name() != name {
		return fmt.Errorf("RestoreSecret: %v", err)
	}
	if got, err := c.GetSecret(ctx, name, "", nil); err != nil || *got.Value != "two" {
		return fmt.Errorf("after restore: %v", err)
	}
	return nil
}

// runProbe runs the probe as a child process with exactly the environment given.
func runProbe(t *testing.T, env []string, kind, ops string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(env, "SDKPROBE="+kind, "SDKPROBE_OPS="+ops)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PROBE OK") {
		t.Fatalf("%s probe: %v\n%s", kind, err, out)
	}
}

func TestClientSecretCredentialUsesEverySecretsOperation(t *testing.T) {
	t.Parallel()
	c := localcloudtest.Start(t)
	runProbe(t, c.ChildEnv(os.Environ(), c.DeveloperEnv()...), "secret", "all")
}

func TestClientCertificateCredentialReadsTheVault(t *testing.T) {
	t.Parallel()
	c := localcloudtest.Start(t)
	app, pem, err := c.RegisterAppWithCertificate("cert-app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssignRole(app.ObjectID, "Key Vault Secrets Officer", localcloud.VaultResourceID(localcloud.VaultName)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	runProbe(t, c.ChildEnv(os.Environ(), "AZURE_CLIENT_ID="+app.ClientID, "AZURE_CLIENT_CERTIFICATE_PATH="+path), "certificate", "all")
}

func TestSystemAssignedManagedIdentityReadsTheVault(t *testing.T) {
	t.Parallel()
	c := localcloudtest.Start(t)
	child, err := launch.AppService(c, "probe-system")
	if err != nil {
		t.Fatal(err)
	}
	defer child.Stop()
	before := c.Entra.TokenRequests()
	runProbe(t, c.ChildEnv(os.Environ(), child.Env...), "managed", "")
	if after := c.Entra.TokenRequests(); after != before {
		t.Fatalf("a managed identity called Entra's token endpoint %d times", after-before)
	}
}

func TestUserAssignedManagedIdentityReadsTheVault(t *testing.T) {
	t.Parallel()
	c := localcloudtest.Start(t)
	site := localcloud.WebAppResourceID("probe-user")
	uai := "/subscriptions/" + localcloud.SubscriptionID + "/resourceGroups/" + localcloud.ResourceGroup + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/probe-id"
	sp, err := c.Directory.CreateUserAssignedIdentity(localcloud.TenantID, uai)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Directory.AssignUserAssignedIdentity(localcloud.TenantID, site, uai); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssignRole(sp.ObjectID, "Key Vault Secrets User", localcloud.VaultResourceID(localcloud.VaultName)); err != nil {
		t.Fatal(err)
	}
	ep, err := c.Identity.Start(site)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	runProbe(t, c.ChildEnv(os.Environ(), append(ep.Env(), "PROBE_CLIENT_ID="+sp.AppID)...), "managed-user", "")
	if ep.Issued() == 0 {
		t.Fatal("the user-assigned identity's token did not come from the endpoint")
	}
}

func TestDefaultAzureCredentialWithAServicePrincipal(t *testing.T) {
	t.Parallel()
	c := localcloudtest.Start(t)
	runProbe(t, c.ChildEnv(os.Environ(), c.DeveloperEnv()...), "default", "")
}

func TestDefaultAzureCredentialOnAppService(t *testing.T) {
	t.Parallel()
	c := localcloudtest.Start(t)
	child, err := launch.AppService(c, "probe-default")
	if err != nil {
		t.Fatal(err)
	}
	defer child.Stop()
	runProbe(t, c.ChildEnv(os.Environ(), child.Env...), "default", "")
}

// TestSeedingOperationsPrepareTheCloudForAStep drives the Go seeding API the steps' launchers
// and tests use, and checks each through the services it changes.
func TestSeedingOperationsPrepareTheCloudForAStep(t *testing.T) {
	t.Parallel()
	c := localcloudtest.Start(t)
	if _, err := c.CreateVault("kv-seeded"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetSecret("kv-seeded", "Greeting", "hello"); err != nil {
		t.Fatal(err)
	}
	app, err := c.RegisterApp("seeded-app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Directory.VerifyClientSecret(localcloud.TenantID, app.ClientID, app.ClientSecret); err != nil {
		t.Fatalf("the registered app's secret does not sign in: %v", err)
	}
	if _, err := c.AssignRole(app.ObjectID, "Key Vault Secrets User", localcloud.SecretScope("kv-seeded", "Greeting")); err != nil {
		t.Fatal(err)
	}
	if !c.Directory.IsAllowed(app.ObjectID, "Microsoft.KeyVault/vaults/secrets/getSecret/action", localcloud.SecretScope("kv-seeded", "Greeting")) {
		t.Fatal("the role assignment does not let the app read the secret")
	}
	sp, err := c.EnableManagedIdentity("seeded-site")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Directory.ServicePrincipal(sp.ObjectID); !ok {
		t.Fatal("enabling the identity made no service principal")
	}
	if err := c.DisableManagedIdentity("seeded-site"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Directory.ServicePrincipal(sp.ObjectID); ok {
		t.Fatal("disabling the identity left its service principal")
	}
}

// TestWellKnownValuesComeBackAfterTheirGroupIsDeleted: a restart recreates the well-known vault
// and its role assignments, so the tutorial's steps work again.
func TestWellKnownValuesComeBackAfterTheirGroupIsDeleted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := localcloudtest.Start(t, func(o *localcloud.Options) { o.Dir = dir })
	vault := localcloud.VaultResourceID(localcloud.VaultName)
	if err := c.KeyVault.DeleteVault(localcloud.VaultName); err != nil {
		t.Fatal(err)
	}
	if err := c.Directory.DeleteRoleAssignmentsUnder(vault); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = localcloudtest.Start(t, func(o *localcloud.Options) { o.Dir = dir })
	if _, ok := c.KeyVault.Vault(localcloud.VaultName); !ok {
		t.Fatal("the well-known vault was not recreated")
	}
	for clientID, action := range map[string]string{
		localcloud.DeveloperClientID: "Microsoft.KeyVault/vaults/secrets/setSecret/action",
		localcloud.Step01ClientID:    "Microsoft.KeyVault/vaults/secrets/getSecret/action",
	} {
		sp, ok := c.Directory.ServicePrincipalByAppID(localcloud.TenantID, clientID)
		if !ok || !c.Directory.IsAllowed(sp.ObjectID, action, localcloud.SecretScope(localcloud.VaultName, localcloud.SecretName)) {
			t.Errorf("%s lost its well-known role on the recreated vault", clientID)
		}
	}
}
