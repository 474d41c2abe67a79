package directory

import "strings"

// RoleDefinition is an Azure built-in role, with the data actions Key Vault checks.
type RoleDefinition struct {
	ID             string   `json:"id"` // the role's GUID, the same in every subscription
	RoleName       string   `json:"roleName"`
	Description    string   `json:"description"`
	Actions        []string `json:"actions"` // control-plane actions (the local cloud checks only AcrPull's)
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// Key Vault's built-in roles for the RBAC permission model, with their real IDs and data actions.
var (
	KeyVaultAdministrator = RoleDefinition{
		ID:          "00482a5a-887f-4fb3-b363-3b7fe8e74483",
		RoleName:    "Key Vault Administrator",
		Description: "Perform all data plane operations on a key vault and all objects in it, including certificates, keys, and secrets.",
		DataActions: []string{"Microsoft.KeyVault/vaults/*"},
	}
	KeyVaultSecretsOfficer = RoleDefinition{
		ID:          "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
		RoleName:    "Key Vault Secrets Officer",
		Description: "Perform any action on the secrets of a key vault, except manage permissions.",
		DataActions: []string{"Microsoft.KeyVault/vaults/secrets/*"},
	}
	KeyVaultSecretsUser = RoleDefinition{
		ID:          "4633458b-17de-408a-b874-0445c86b69e6",
		RoleName:    "Key Vault Secrets User",
		Description: "Read secret contents.",
		DataActions: []string{
			"Microsoft.KeyVault/vaults/secrets/getSecret/action",
			"Microsoft.KeyVault/vaults/secrets/readMetadata/action",
		},
	}
	KeyVaultReader = RoleDefinition{
		ID:          "21090545-7ca7-4776-b22c-e363652d74d2",
		RoleName:    "Key Vault Reader",
		Description: "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values such as secret contents or key material.",
		DataActions: []string{
			"Microsoft.KeyVault/vaults/*/read",
			"Microsoft.KeyVault/vaults/secrets/readMetadata/action",
		},
	}
)

// AcrPull lets a principal pull images from a container registry: what a web app's managed
// identity needs to start from a private registry without a registry password.
var AcrPull = RoleDefinition{
	ID:          "7f951dca-4ed3-4a0c-a1b1-0acc8db0b7b0",
	RoleName:    "AcrPull",
	Description: "acr pull",
	Actions:     []string{"Microsoft.ContainerRegistry/registries/pull/read"},
}

// The general built-in roles, with their real IDs and control-plane actions. The local Resource
// Manager does not check control-plane actions (any principal of the tenant acts as Owner), but
// it lists and assigns these roles as Azure does, and they count as Azure counts them for the
// one control-plane action the local cloud checks: Owner, Contributor and Reader can all pull
// images from a registry.
var (
	Owner = RoleDefinition{
		ID:          "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
		RoleName:    "Owner",
		Description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Actions:     []string{"*"},
	}
	Contributor = RoleDefinition{
		ID:          "b24988ac-6180-42a0-ab88-20f7382dd24c",
		RoleName:    "Contributor",
		Description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
		Actions:     []string{"*"},
		NotActions: []string{
			"Microsoft.Authorization/*/Delete",
			"Microsoft.Authorization/*/Write",
			"Microsoft.Authorization/elevateAccess/Action",
			"Microsoft.Blueprint/blueprintAssignments/write",
			"Microsoft.Blueprint/blueprintAssignments/delete",
			"Microsoft.Compute/galleries/share/action",
		},
	}
	Reader = RoleDefinition{
		ID:          "acdd72a7-3385-48ef-bd42-f606fba81ae7",
		RoleName:    "Reader",
		Description: "View all resources, but does not allow you to make any changes.",
		Actions:     []string{"*/read"},
	}
)

// ActionAcrPull is the control-plane action App Service needs to pull an image.
const ActionAcrPull = "Microsoft.ContainerRegistry/registries/pull/read"

// BuiltInRoles are the roles the local cloud knows.
var BuiltInRoles = []RoleDefinition{
	KeyVaultAdministrator, KeyVaultSecretsOfficer, KeyVaultSecretsUser, KeyVaultReader, AcrPull, Owner, Contributor, Reader,
}

// Secrets data actions, as Key Vault names them for each operation.
const (
	ActionGetSecret    = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
	ActionReadMetadata = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
	ActionSetSecret    = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
	ActionUpdateSecret = "Microsoft.KeyVault/vaults/secrets/update/action"
	ActionDeleteSecret = "Microsoft.KeyVault/vaults/secrets/delete"
	ActionRecover      = "Microsoft.KeyVault/vaults/secrets/recover/action"
	ActionBackup       = "Microsoft.KeyVault/vaults/secrets/backup/action"
	ActionRestore      = "Microsoft.KeyVault/vaults/secrets/restore/action"
	ActionPurge        = "Microsoft.KeyVault/vaults/secrets/purge/action"
)

// LookupRole finds a built-in role by name (case-insensitive), GUID, or full role definition ID
// (".../providers/Microsoft.Authorization/roleDefinitions/<guid>"), as az accepts all three.
func LookupRole(nameOrID string) (RoleDefinition, bool) {
	key := nameOrID
	if i := strings.LastIndex(key, "/"); i >= 0 {
		key = key[i+1:]
	}
	for _, r := range BuiltInRoles {
		if strings.EqualFold(r.RoleName, nameOrID) || strings.EqualFold(r.ID, key) {
			return r, true
		}
	}
	return RoleDefinition{}, false
}

// Allows reports whether the role grants a data action: a pattern's "*" matches any run of
// characters, as in Azure role definitions, and NotDataActions subtract.
func (r RoleDefinition) Allows(action string) bool {
	for _, na := range r.NotDataActions {
		if matchAction(na, action) {
			return false
		}
	}
	for _, a := range r.DataActions {
		if matchAction(a, action) {
			return true
		}
	}
	return false
}

// AllowsAction reports whether the role grants a control-plane action; NotActions subtract.
func (r RoleDefinition) AllowsAction(action string) bool {
	for _, na := range r.NotActions {
		if matchAction(na, action) {
			return false
		}
	}
	for _, a := range r.Actions {
		if matchAction(a, action) {
			return true
		}
	}
	return false
}

func matchAction(pattern, action string) bool {
	pattern, action = strings.ToLower(pattern), strings.ToLower(action)
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == action
	}
	if !strings.HasPrefix(action, parts[0]) {
		return false
	}
	rest := action[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(rest, p)
		}
		j := strings.Index(rest, p)
		if j < 0 {
			return false
		}
		rest = rest[j+len(p):]
	}
	return true
}

// ScopeCovers reports whether a role assigned at scope applies to resource: the same path, or a
// parent of it on a segment boundary, compared case-insensitively as Azure Resource Manager does.
func ScopeCovers(scope, resource string) bool {
	s := strings.TrimSuffix(strings.ToLower(scope), "/")
	r := strings.TrimSuffix(strings.ToLower(resource), "/")
	if s == "" {
		return true // "/" is the root scope
	}
	return r == s || strings.HasPrefix(r, s+"/")
}
