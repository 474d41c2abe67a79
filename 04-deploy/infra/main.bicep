// The step-03 app on App Service, as a container, reading its secret from Key Vault with a
// system-assigned managed identity: the same deployment as ../deploy.sh, declared.
//
//   az group create --name rg-kvboot-demo --location westeurope
//   az deployment group create --resource-group rg-kvboot-demo \
//     --template-file 04-deploy/infra/main.bicep --parameters 04-deploy/infra/main.parameters.json
//   (az asks for secretValue: it is @secure() and in no file)
//
// or `azd up` from 04-deploy/ (see azure.yaml). No credential is created anywhere: the web app
// reaches both the vault and the registry with its own identity.

targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Makes the globally unique names (vault, registry, web app); lowercase letters and digits.')
@minLength(3)
@maxLength(13)
param nameSuffix string = uniqueString(resourceGroup().id)

@description('The value stored as SecretPassword. Secure: never logged, never in a parameters file.')
@secure()
param secretValue string

@description('The image the web app runs, as repository:tag in the new registry.')
param imageName string = 'app:v1'

// Built-in role IDs are the same in every tenant.
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
var acrPullRoleId = '7f951dca-4ed3-4a0c-a1b1-0acc8db0b7b0'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-boot-${nameSuffix}'
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Azure RBAC decides who may read secrets; no access policies.
    enableRbacAuthorization: true
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'SecretPassword'
  properties: {
    value: secretValue
  }
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: 'acrboot${nameSuffix}'
  location: location
  sku: {
    name: 'Basic'
  }
  properties: {
    // No registry password: the web app pulls with its managed identity (AcrPull below).
    adminUserEnabled: false
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-boot-${nameSuffix}'
  location: location
  kind: 'linux'
  sku: {
    name: 'B1'
    tier: 'Basic'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'app-boot-${nameSuffix}'
  location: location
  // azd finds the web app of service `app` (azure.yaml) by this tag.
  tags: {
    'azd-service-name': 'app'
  }
  kind: 'app,linux,container'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      linuxFxVersion: 'DOCKER|${registry.properties.loginServer}/${imageName}'
      acrUseManagedIdentityCreds: true
      ftpsState: 'Disabled'
      minTlsVersion: '1.2'
      appSettings: [
        {
          name: 'AZURE_KEYVAULT_URL'
          value: vault.properties.vaultUri
        }
        {
          name: 'WEBSITES_PORT'
          value: '8080'
        }
        {
          // Re-read the secret every 5 minutes, so the role assignment below is noticed even
          // if the app starts before it has reached Key Vault.
          name: 'SECRET_REFRESH_INTERVAL'
          value: '5m'
        }
      ]
    }
  }
}

// The app's identity may read secrets in this vault, and nothing else.
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, site.id, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// The same identity may pull images from this registry.
resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, site.id, acrPullRoleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output AZURE_KEYVAULT_URL string = vault.properties.vaultUri
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.properties.loginServer
output AZURE_CONTAINER_REGISTRY_NAME string = registry.name
output WEB_APP_NAME string = site.name
output WEB_APP_URL string = 'https://${site.properties.defaultHostName}'
output WEB_APP_PRINCIPAL_ID string = site.identity.principalId
