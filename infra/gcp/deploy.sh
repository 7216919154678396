#!/usr/bin/env bash
# First (and every later) deployment of snapwatch on Google Cloud (`make deploy-gcp`;
# infra/gcp/README.md, "First deployment"):
#   1. enable the APIs and create the Artifact Registry repository (once);
#   2. package: build the image (make package-gcp with Docker, else Cloud Build) and resolve its
#      digest;
#   3. terraform apply with that image. No Slack secret version exists yet, so the service
#      refers to none (it logs findings) and starts;
#   4. deploy the Slack webhook, if SLACK_WEBHOOK_URL is set, as a new secret version;
#   5. terraform apply again, now referring to the version ("latest") that exists.
# Settings (environment): GCP_PROJECT (required), GCP_REGION (default europe-west1),
# GCP_ARTIFACT_REPO (default snapwatch), GCP_TF_DIR (default infra/gcp/examples/project),
# SLACK_WEBHOOK_URL (optional), TF_APPLY_FLAGS (e.g. -auto-approve).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
project=${GCP_PROJECT:?set GCP_PROJECT to the project to deploy into and watch}
region=${GCP_REGION:-europe-west1}
repo=${GCP_ARTIFACT_REPO:-snapwatch}
dir=${GCP_TF_DIR:-$root/infra/gcp/examples/project}
read -r -a apply_flags <<<"${TF_APPLY_FLAGS:-}"

for tool in terraform gcloud; do
  command -v "$tool" >/dev/null 2>&1 || { echo "deploy-gcp: $tool is required (see infra/gcp/README.md)" >&2; exit 1; }
done
tf() { terraform -chdir="$dir" "$@"; }
tf_vars=(-var "project_id=$project" -var "region=$region")

echo "== deploy-gcp 1/5: APIs and the image repository"
gcloud services enable --project "$project" run.googleapis.com eventarc.googleapis.com \
  firestore.googleapis.com secretmanager.googleapis.com pubsub.googleapis.com \
  logging.googleapis.com artifactregistry.googleapis.com cloudbuild.googleapis.com iam.googleapis.com
gcloud artifacts repositories describe "$repo" --project "$project" --location "$region" >/dev/null 2>&1 ||
  gcloud artifacts repositories create "$repo" --project "$project" --location "$region" --repository-format docker

echo "== deploy-gcp 2/5: package (the container image)"
image="$region-docker.pkg.dev/$project/$repo/snapwatch-gcp"
tag=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S)
if command -v docker >/dev/null 2>&1; then
  make -C "$root" package-gcp GCP_IMAGE="$image:$tag"
  docker push "$image:$tag"
else
  gcloud builds submit "$root" --project "$project" --config "$root/functions/gcp/cloudbuild.yaml" \
    --substitutions "_IMAGE=$image:$tag"
fi
digest=$(gcloud artifacts docker images describe "$image:$tag" --project "$project" --format 'value(image_summary.digest)')
tf_vars+=(-var "image=$image@$digest")

echo "== deploy-gcp 3/5: terraform apply"
tf init -input=false
tf apply -input=false "${apply_flags[@]}" "${tf_vars[@]}"

echo "== deploy-gcp 4/5: deploy the Slack webhook"
if [ -n "${SLACK_WEBHOOK_URL:-}" ]; then
  printf %s "$SLACK_WEBHOOK_URL" | gcloud secrets versions add "$(tf output -raw slack_secret_id)" --project "$project" --data-file=-
  tf_vars+=(-var "slack_secret_version=latest")
else
  echo "deploy-gcp: SLACK_WEBHOOK_URL is not set: findings are only logged (rerun with it set to alert)"
fi

echo "== deploy-gcp 5/5: terraform apply again"
tf apply -input=false "${apply_flags[@]}" "${tf_vars[@]}"
