// Package arm stands in for Azure Resource Manager at management.azure.com: the control plane
// that az, Bicep and the management SDKs call to create resource groups, key vaults, container
// registries, App Service plans and web apps, and to read role definitions and create role
// assignments. It answers with ARM's JSON shapes, status codes and error codes
// ({"error":{"code","message"}}: ResourceGroupNotFound, ResourceNotFound, RoleAssignmentExists,
// MissingApiVersionParameter, ...), treats path segments case-insensitively as ARM does, and
// drives the local services that do the work: keyvault for vaults, appservice for registries,
// builds, plans and web apps, and directory for role assignments. It also serves the blob host
// that `az acr build` uploads its source to and reads its log from (BlobHandler).
//
// Every request needs a bearer token that the local Entra ID issued for
// https://management.azure.com (or https://management.core.windows.net) in the subscription's
// tenant. Control-plane authorization is NOT enforced: any principal of the local tenant acts
// as Owner of the one subscription, so a learner's deploy script cannot fail on a missing
// Contributor role. Data-plane RBAC (Key Vault's secrets, a registry's AcrPull) is enforced by
// the services themselves, from the role assignments made here.
//
// Left out on purpose: every other resource type and provider, ARM templates and deployments
// (Bicep runs only against real Azure), tags beyond storing them, locks, policies, deny
// assignments, custom roles, management groups, asynchronous operations (every create and
// delete completes before the response), vault soft delete and purge at the management plane,
// and per-api-version differences: any api-version is accepted, but one is required.
package arm
