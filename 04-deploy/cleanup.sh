#!/usr/bin/env bash
# Deletes what deploy.sh made: its resource group, and with it the web app (whose managed
# identity goes too), the plan, the registry, the vault and every role assignment inside.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: 04-deploy/cleanup.sh (--resource-group GROUP | --name-suffix SUFFIX) [--purge]

Deletes the resource group that deploy.sh made, and everything in it. Deleting the web app
deletes its system-assigned managed identity too.

Options:
  --resource-group GROUP   the group to delete (deploy.sh prints it at the end)
  --name-suffix SUFFIX     the suffix given to deploy.sh; the group is rg-kvboot-SUFFIX
                           (DEPLOY_RESOURCE_GROUP and DEPLOY_NAME_SUFFIX are read too)
  --purge                  also purge the group's key vaults. Azure keeps a deleted vault for
                           90 days (soft delete), and its name stays taken until it is purged.
  -h, --help               show this help

Environment: AZ, the az command to run (default: az; AZ=azlocal for the local cloud).
EOF
}

die() { printf 'cleanup.sh: %s\n' "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*" >&2; }

AZ=${AZ:-az}
group=${DEPLOY_RESOURCE_GROUP:-}
suffix=${DEPLOY_NAME_SUFFIX:-}
purge=false

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --resource-group) [ $# -ge 2 ] || die "--resource-group needs a value"; group=$2; shift 2 ;;
    --name-suffix) [ $# -ge 2 ] || die "--name-suffix needs a value"; suffix=$2; shift 2 ;;
    --purge) purge=true; shift ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

if [ -z "$group" ] && [ -n "$suffix" ]; then
  group=rg-kvboot-$suffix
fi
[ -n "$group" ] || { usage >&2; die "say which deployment to delete: --resource-group GROUP or --name-suffix SUFFIX"; }
command -v "$AZ" >/dev/null 2>&1 || die "'$AZ' was not found: install the Azure CLI, or set AZ"

if [ "$("$AZ" group exists --name "$group")" != true ]; then
  printf 'Resource group %s does not exist: nothing to delete.\n' "$group"
  exit 0
fi

vaults=()
if [ "$purge" = true ]; then
  while IFS= read -r v; do
    [ -n "$v" ] && vaults+=("$v")
  done < <("$AZ" keyvault list --resource-group "$group" --query '[].name' -o tsv)
fi

step "Deleting resource group $group and everything in it (this takes a few minutes on Azure)"
"$AZ" group delete --name "$group" --yes

if [ "$purge" = true ] && [ ${#vaults[@]} -gt 0 ]; then
  for v in "${vaults[@]}"; do
    step "Purging the soft-deleted vault $v"
    "$AZ" keyvault purge --name "$v"
  done
fi
printf 'Deleted resource group %s.\n' "$group"
