#!/usr/bin/env bash
# Deploys the step-03 app to Azure App Service as a container, with a managed identity that
# reads its secret from Key Vault (Azure RBAC), and waits until the app serves the secret.
# Run it with no arguments; --help tells the rest. The same script rehearses offline against
# the local cloud with AZ=azlocal.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: 04-deploy/deploy.sh [--name-suffix SUFFIX] [--location LOCATION] [--resource-group GROUP]

Deploys the step-03 app to Azure App Service as a container built by Azure Container Registry,
gives the app a system-assigned managed identity with "Key Vault Secrets User" on a new vault,
and waits until https://<app>.azurewebsites.net/api/SecretTest answers with the secret.
Prints the app's URL as its last line; progress goes to standard error.

Options (each also read from the environment variable shown):
  --name-suffix SUFFIX     DEPLOY_NAME_SUFFIX      3-12 lowercase letters and digits that make
                                                   the resource names; default: random
  --location LOCATION      DEPLOY_LOCATION         Azure region; default: westeurope
  --resource-group GROUP   DEPLOY_RESOURCE_GROUP   default: rg-kvboot-SUFFIX
  -h, --help               show this help

Other environment variables:
  AZ                       the az command to run; default: az. AZ=azlocal rehearses the
                           deployment against the local cloud (a command on PATH or a path).
  SECRET_VALUE             the value stored as SecretPassword; default: reindeer_flotilla
  DEPLOY_WAIT_SECONDS      how long to wait for the app to serve the secret; default: 900
                           (role assignments can take several minutes to reach Key Vault)
  DEPLOY_CALLER_OBJECT_ID  your own object ID, if az cannot look it up (a service principal
                           without permission to read the directory, a managed identity)
  SSL_CERT_FILE            if set, curl trusts this CA file when it checks the app (the local
                           cloud's CA); HTTPS_PROXY is honoured as curl always does

Before you start: az login (on Azure you need Owner, or Contributor plus Role Based Access
Control Administrator, on the subscription). Delete everything with 04-deploy/cleanup.sh.
EOF
}

die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }

AZ=${AZ:-az}
suffix=${DEPLOY_NAME_SUFFIX:-}
location=${DEPLOY_LOCATION:-westeurope}
group=${DEPLOY_RESOURCE_GROUP:-}
wait_seconds=${DEPLOY_WAIT_SECONDS:-900}
secret_value=${SECRET_VALUE:-reindeer_flotilla}

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --name-suffix) [ $# -ge 2 ] || die "--name-suffix needs a value"; suffix=$2; shift 2 ;;
    --location) [ $# -ge 2 ] || die "--location needs a value"; location=$2; shift 2 ;;
    --resource-group) [ $# -ge 2 ] || die "--resource-group needs a value"; group=$2; shift 2 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

if [ -z "$suffix" ]; then
  suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
fi
case "$suffix" in
  *[!a-z0-9]*|'') die "the name suffix must be lowercase letters and digits, not '$suffix'" ;;
esac
if [ ${#suffix} -lt 3 ] || [ ${#suffix} -gt 12 ]; then
  die "the name suffix must be 3 to 12 characters long, not '$suffix'"
fi
case "$wait_seconds" in
  *[!0-9]*|'') die "DEPLOY_WAIT_SECONDS must be a whole number of seconds, not '$wait_seconds'" ;;
esac
command -v "$AZ" >/dev/null 2>&1 || die "'$AZ' was not found: install the Azure CLI, or set AZ (AZ=\$PWD/bin/azlocal for the local cloud)"
command -v curl >/dev/null 2>&1 || die "curl was not found; install it to let the script check the app"

# Names: vaults, registries and web apps are global, hence the suffix; registry names allow
# letters and digits only.
group=${group:-rg-kvboot-$suffix}
vault=kv-boot-$suffix
registry=acrboot$suffix
plan=plan-boot-$suffix
app=app-boot-$suffix
image=app:v1
secret_name=SecretPassword

# The repository root, wherever this script is run from: the image is built from it.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

step "Signing in: checking who runs this"
subscription=$("$AZ" account show --query name -o tsv) || die "not signed in: run 'az login' (or, offline, start the local cloud and set AZ=azlocal)"
note "subscription: $subscription"

step "Resource group $group in $location"
"$AZ" group create --name "$group" --location "$location" -o none

step "Key Vault $vault (Azure RBAC, no access policies)"
"$AZ" keyvault create --name "$vault" --resource-group "$group" --location "$location" \
  --enable-rbac-authorization true -o none
vault_id=$("$AZ" keyvault show --name "$vault" --resource-group "$group" --query id -o tsv)
vault_url=$("$AZ" keyvault show --name "$vault" --resource-group "$group" --query properties.vaultUri -o tsv)

step "Key Vault Secrets Officer on the vault for you, to write the secret"
caller=${DEPLOY_CALLER_OBJECT_ID:-}
caller_type=User
if [ "$("$AZ" account show --query user.type -o tsv)" = servicePrincipal ]; then
  caller_type=ServicePrincipal
fi
if [ -z "$caller" ]; then
  if [ "$caller_type" = ServicePrincipal ]; then
    caller_name=$("$AZ" account show --query user.name -o tsv)
    caller=$("$AZ" ad sp show --id "$caller_name" --query id -o tsv) ||
      die "could not look up the object ID of service principal $caller_name; set DEPLOY_CALLER_OBJECT_ID"
  else
    caller=$("$AZ" ad signed-in-user show --query id -o tsv) ||
      die "could not look up your object ID; set DEPLOY_CALLER_OBJECT_ID"
  fi
fi
note "you are $caller_type $caller"
"$AZ" role assignment create --role "Key Vault Secrets Officer" --assignee-object-id "$caller" \
  --assignee-principal-type "$caller_type" --scope "$vault_id" -o none

step "Secret $secret_name (value not shown)"
# A new role assignment takes a while to reach Key Vault: retry until it does.
delay=2
deadline=$((SECONDS + 300))
until "$AZ" keyvault secret set --vault-name "$vault" --name "$secret_name" --value "$secret_value" -o none; do
  [ "$SECONDS" -lt "$deadline" ] || die "could not write the secret for 5 minutes; check your role on $vault_id"
  note "the vault does not let you write yet (role assignments take minutes to apply); retrying in ${delay}s"
  sleep "$delay"
  delay=$((delay * 2 > 30 ? 30 : delay * 2))
done

step "Container registry $registry (Basic, admin user off) and the image, built in the registry"
"$AZ" acr create --name "$registry" --resource-group "$group" --location "$location" --sku Basic \
  --admin-enabled false -o none
registry_id=$("$AZ" acr show --name "$registry" --resource-group "$group" --query id -o tsv)
login_server=$("$AZ" acr show --name "$registry" --resource-group "$group" --query loginServer -o tsv)
# az acr build uploads its whole source folder, reading only a .dockerignore at its root. Stage
# just what the Dockerfile copies, laid out as in the repository.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/04-deploy"
cp "$root/go.mod" "$root/go.sum" "$context/"
cp -R "$root/03-managed-identity" "$context/"
cp "$here/Dockerfile" "$context/04-deploy/Dockerfile"
"$AZ" acr build --registry "$registry" --resource-group "$group" --image "$image" \
  --file "$context/04-deploy/Dockerfile" "$context" >&2

step "App Service plan $plan (Linux, B1)"
"$AZ" appservice plan create --name "$plan" --resource-group "$group" --location "$location" \
  --is-linux --sku B1 -o none

step "Web app $app"
# The image cannot be pulled yet (the app has no identity and no AcrPull); App Service keeps
# trying, and the steps below make it work.
"$AZ" webapp create --name "$app" --resource-group "$group" --plan "$plan" \
  --container-image-name "$login_server/$image" --https-only true -o none

step "App settings: where the vault is; no credential"
# SECRET_REFRESH_INTERVAL: re-read the secret every 5 minutes, so access granted (or revoked)
# after the app started is noticed without a restart.
"$AZ" webapp config appsettings set --name "$app" --resource-group "$group" \
  --settings "AZURE_KEYVAULT_URL=$vault_url" WEBSITES_PORT=8080 SECRET_REFRESH_INTERVAL=5m -o none

step "Managed identity: one command, with Key Vault Secrets User on the vault"
principal=$("$AZ" webapp identity assign --name "$app" --resource-group "$group" \
  --role "Key Vault Secrets User" --scope "$vault_id" --query principalId -o tsv)
note "the app's identity is service principal $principal"

step "The same identity pulls the image: AcrPull on the registry, no registry password"
"$AZ" role assignment create --role AcrPull --assignee-object-id "$principal" \
  --assignee-principal-type ServicePrincipal --scope "$registry_id" -o none
"$AZ" webapp config set --name "$app" --resource-group "$group" \
  --generic-configurations '{"acrUseManagedIdentityCreds": true}' -o none
"$AZ" webapp config container set --name "$app" --resource-group "$group" \
  --container-image-name "$login_server/$image" --container-registry-url "https://$login_server" -o none
"$AZ" webapp restart --name "$app" --resource-group "$group" -o none

host=$("$AZ" webapp show --name "$app" --resource-group "$group" --query defaultHostName -o tsv)
url=https://$host

step "Waiting for $url/api/SecretTest to serve the secret (up to ${wait_seconds}s)"
note "on Azure this takes minutes: the container is pulled and started, and the new role"
note "assignments have to reach the registry and Key Vault"
curl_args=(-sS --max-time 30 -w '%{http_code}')
if [ -n "${SSL_CERT_FILE:-}" ]; then
  curl_args+=(--cacert "$SSL_CERT_FILE")
fi
body=$(mktemp)
trap 'rm -rf "$context" "$body"' EXIT
curl_args+=(-o "$body")
deadline=$((SECONDS + wait_seconds))
delay=1
while :; do
  : >"$body"
  status=$(curl "${curl_args[@]}" "$url/api/SecretTest" 2>/dev/null) || status=000
  # The page holds the secret: check it, never print it.
  if [ "$status" = 200 ] && grep -q '^Secret value:' "$body"; then
    note "the app read $secret_name from the vault with its managed identity"
    break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    note "last answer: HTTP $status $(head -c 300 "$body" | head -n 1)"
    die "the app did not serve the secret within ${wait_seconds}s. It may still: a new role
assignment can take about ten minutes to apply, and the app re-reads the secret every 5 minutes.
Try $url/api/SecretTest again later, and look at the app's log with
    $AZ webapp log tail --name $app --resource-group $group
Delete everything with: 04-deploy/cleanup.sh --resource-group $group"
  fi
  note "not yet: HTTP $status $(head -c 200 "$body" | head -n 1); next try in ${delay}s"
  sleep "$delay"
  delay=$((delay * 2 > 60 ? 60 : delay * 2))
done

note "delete everything with: 04-deploy/cleanup.sh --resource-group $group"
printf '%s\n' "$url"
