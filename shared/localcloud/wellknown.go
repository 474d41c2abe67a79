package localcloud

// The local cloud's well-known values. Like Azurite's well-known storage account, they are the
// same on every machine and published here on purpose: they are local values, not secrets, and
// they open nothing on Azure.
const (
	// TenantID is the local Entra ID tenant.
	TenantID = "10ca1c10-0000-4000-a000-000000000000"
	// SubscriptionID and ResourceGroup hold the local resources.
	SubscriptionID = "10ca1c10-0000-4000-a000-00000000005b"
	ResourceGroup  = "rg-localcloud"
	Location       = "westeurope"

	// VaultName is the well-known vault; VaultURL is what apps get as AZURE_KEYVAULT_URL.
	VaultName = "kv-bootstrap-local"
	VaultURL  = "https://" + VaultName + ".vault.azure.net/"
	// SecretName holds SecretValue in the well-known vault, as in the Learn module.
	SecretName  = "SecretPassword"
	SecretValue = "reindeer_flotilla"

	// Step01ClientID and Step01ClientSecret are the app registration whose secret step 01
	// writes into its source code: deliberately public, to show why that is a problem.
	Step01ClientID     = "10ca1c10-0000-4000-a000-000000000001"
	Step01ClientSecret = "s01~Written.Into.Source.Code-NotASecret"
	Step01DisplayName  = "keyvault-bootstrapping-step01"

	// DeveloperClientID and DeveloperClientSecret are the developer's principal (what `az
	// login` would be): Key Vault Secrets Officer on the well-known vault.
	DeveloperClientID     = "10ca1c10-0000-4000-a000-00000000de00"
	DeveloperClientSecret = "dev~LocalCloud.Developer-NotASecret"
	DeveloperDisplayName  = "localcloud-developer"
)

// VaultResourceID is the Azure resource ID of a vault in the local subscription.
func VaultResourceID(name string) string {
	return "/subscriptions/" + SubscriptionID + "/resourceGroups/" + ResourceGroup + "/providers/Microsoft.KeyVault/vaults/" + name
}

// SecretScope is the RBAC scope of one secret: a role assigned here applies to that secret alone.
func SecretScope(vault, secret string) string { return VaultResourceID(vault) + "/secrets/" + secret }

// WebAppResourceID is the resource ID of a web app in the local subscription.
func WebAppResourceID(name string) string {
	return "/subscriptions/" + SubscriptionID + "/resourceGroups/" + ResourceGroup + "/providers/Microsoft.Web/sites/" + name
}
