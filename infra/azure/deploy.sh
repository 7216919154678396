#!/usr/bin/env bash
# First (and every later) deployment of snapwatch on Azure, in the order that works
# (`make deploy-azure`; infra/azure/README.md, "First deployment"):
#   1. terraform apply of the function app and what it needs. Not yet the Event Grid
#      subscription: Event Grid validates the ResourceEvents function when it is created, and
#      that function exists only once the code is deployed;
#   2. make package-azure (the custom handler zip);
#   3. az functionapp deployment source config-zip, then wait until the host lists ResourceEvents;
#   4. terraform apply of everything. It plans no change to WEBSITE_RUN_FROM_PACKAGE, which
#      step 3 set (the module ignores it).
# Settings (environment): AZURE_TF_DIR, the Terraform root (default infra/azure/examples/basic);
# AZURE_TF_MODULE, the module's address in it (default module.snapwatch); TF_APPLY_FLAGS, e.g.
# -auto-approve. Terraform variables come from TF_VAR_* or a *.auto.tfvars file in AZURE_TF_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${AZURE_TF_DIR:-$root/infra/azure/examples/basic}
module=${AZURE_TF_MODULE:-module.snapwatch}
read -r -a apply_flags <<<"${TF_APPLY_FLAGS:-}"

for tool in terraform az make zip; do
  command -v "$tool" >/dev/null 2>&1 || { echo "deploy-azure: $tool is required (see infra/azure/README.md)" >&2; exit 1; }
done
tf() { terraform -chdir="$dir" "$@"; }

echo "== deploy-azure 1/4: terraform apply (function app and its dependencies)"
tf init -input=false
tf apply -input=false "${apply_flags[@]}" -target="$module.azurerm_linux_function_app.this"

echo "== deploy-azure 2/4: make package-azure"
make -C "$root" package-azure

group=$(tf output -raw resource_group_name)
app=$(tf output -raw function_app_name)
echo "== deploy-azure 3/4: deploy the package to $app"
az functionapp deployment source config-zip -g "$group" -n "$app" --src "$root/target/azure/snapwatch-azure.zip"
for attempt in $(seq 1 60); do
  az functionapp function show -g "$group" -n "$app" --function-name ResourceEvents >/dev/null 2>&1 && break
  if [ "$attempt" = 60 ]; then
    echo "deploy-azure: the host does not list ResourceEvents 10 minutes after the deployment" >&2
    exit 1
  fi
  sleep 10
done

echo "== deploy-azure 4/4: terraform apply (everything)"
tf apply -input=false "${apply_flags[@]}"
