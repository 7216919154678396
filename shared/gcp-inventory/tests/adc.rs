//! Application Default Credentials against a local token endpoint: the discovery order
//! (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file, the metadata server), the `authorized_user`
//! refresh-token exchange, and the `service_account` RS256 assertion, whose signature the
//! endpoint verifies with the test key's public half.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use snapwatch_gcp_inventory::adc::{ApplicationDefault, Origin};
use snapwatch_gcp_inventory::TokenSource;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gcp-baseline")
        .join(name)
}

#[derive(Clone, Default)]
struct Endpoint {
    grants: Arc<Mutex<Vec<HashMap<String, String>>>>,
    refuse: Arc<Mutex<bool>>,
}

async fn token(
    State(endpoint): State<Endpoint>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    endpoint.grants.lock().unwrap().push(form.clone());
    if *endpoint.refuse.lock().unwrap() {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}))).into_response();
    }
    let ok = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            form.get("client_id").map(String::as_str) == Some("client-1.apps.googleusercontent.com")
                && form.get("client_secret").map(String::as_str) == Some("d-secret")
                && form.get("refresh_token").map(String::as_str) == Some("1//refresh")
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            verify(form.get("assertion").unwrap())
        }
        _ => false,
    };
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "unauthorized_client"})),
        )
            .into_response();
    }
    Json(serde_json::json!({"access_token": "ya29.from-endpoint", "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

/// The assertion is an RS256 JWT signed by the test key, for the Compute scope, to this endpoint.
fn verify(assertion: &str) -> bool {
    let (signing_input, signature) = assertion.rsplit_once('.').unwrap();
    let public = std::fs::read(fixture("test-service-account-key.pub.der")).unwrap();
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public,
    );
    if key
        .verify(
            signing_input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
        .is_err()
    {
        return false;
    }
    let (header, claims) = signing_input.split_once('.').unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    header["alg"] == "RS256"
        && header["kid"] == "key-1"
        && claims["iss"] == "lister@snap-prod.iam.gserviceaccount.com"
        && claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
        && claims["aud"].as_str().unwrap().ends_with("/token")
        && claims["exp"].as_u64().unwrap() == claims["iat"].as_u64().unwrap() + 3600
}

async fn start() -> (Endpoint, String) {
    let endpoint = Endpoint::default();
    let app = Router::new()
        .route("/token", post(token))
        .with_state(endpoint.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (endpoint, url)
}

fn write(dir: &Path, name: &str, value: serde_json::Value) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

fn authorized_user(token_uri: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "authorized_user",
        "client_id": "client-1.apps.googleusercontent.com",
        "client_secret": "d-secret",
        "refresh_token": "1//refresh",
        "quota_project_id": "snap-prod",
        "token_uri": token_uri
    })
}

#[tokio::test]
async fn gclouds_authorized_user_file_exchanges_its_refresh_token_once() {
    let (endpoint, url) = start().await;
    let home = tempfile::tempdir().unwrap();
    let file = write(
        &home.path().join(".config/gcloud"),
        "application_default_credentials.json",
        authorized_user(&url),
    );
    let adc =
        ApplicationDefault::discover(|_| None, Some(home.path()), reqwest::Client::new()).unwrap();
    assert_eq!(adc.origin(), &Origin::File(file));
    for _ in 0..3 {
        let token = adc.token().await.unwrap().unwrap();
        assert_eq!(token.expose(), "ya29.from-endpoint");
    }
    assert_eq!(endpoint.grants.lock().unwrap().len(), 1, "cached");
    assert!(!format!("{adc:?}").contains("1//refresh"));
}

#[tokio::test]
async fn the_variable_wins_and_a_service_account_key_signs_an_assertion() {
    let (endpoint, url) = start().await;
    let dir = tempfile::tempdir().unwrap();
    // gcloud's file exists too, but the variable names another.
    write(
        &dir.path().join(".config/gcloud"),
        "application_default_credentials.json",
        authorized_user(&url),
    );
    let key = write(
        dir.path(),
        "sa.json",
        serde_json::json!({
            "type": "service_account",
            "project_id": "snap-prod",
            "private_key_id": "key-1",
            "private_key": std::fs::read_to_string(fixture("test-service-account-key.pem")).unwrap(),
            "client_email": "lister@snap-prod.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": url
        }),
    );
    let key_path = key.to_string_lossy().to_string();
    let lookup =
        move |name: &str| (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| key_path.clone());
    let adc =
        ApplicationDefault::discover(lookup, Some(dir.path()), reqwest::Client::new()).unwrap();
    assert_eq!(adc.origin(), &Origin::File(key));
    assert_eq!(
        adc.token().await.unwrap().unwrap().expose(),
        "ya29.from-endpoint"
    );
    let grants = endpoint.grants.lock().unwrap();
    assert_eq!(
        grants[0]["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
}

#[tokio::test]
async fn no_file_means_the_metadata_server() {
    let home = tempfile::tempdir().unwrap();
    let adc =
        ApplicationDefault::discover(|_| None, Some(home.path()), reqwest::Client::new()).unwrap();
    assert_eq!(adc.origin(), &Origin::MetadataServer);
}

#[tokio::test]
async fn an_expired_login_is_permanent_and_names_only_the_oauth_error() {
    let (endpoint, url) = start().await;
    *endpoint.refuse.lock().unwrap() = true;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "adc.json", authorized_user(&url));
    let adc = ApplicationDefault::from_file(&file, reqwest::Client::new()).unwrap();
    let error = adc.token().await.unwrap_err();
    assert_eq!(error.class, snapwatch_http::Class::Permanent);
    assert!(error.message.contains("invalid_grant"), "{error}");
    assert!(!error.to_string().contains("1//refresh"));
}

#[tokio::test]
async fn unusable_files_say_what_is_wrong_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body, expected) in [
        (
            "external.json",
            serde_json::json!({"type": "external_account"}),
            "not supported",
        ),
        (
            "no-refresh.json",
            serde_json::json!({"type": "authorized_user", "client_id": "c", "client_secret": "s"}),
            "refresh_token",
        ),
        (
            "bad-key.json",
            serde_json::json!({"type": "service_account", "client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"}),
            "RSA PKCS#8",
        ),
    ] {
        let path = write(dir.path(), name, body);
        let error = ApplicationDefault::from_file(&path, reqwest::Client::new()).unwrap_err();
        assert!(error.to_string().contains(expected), "{name}: {error}");
    }
    let missing =
        ApplicationDefault::from_file(&dir.path().join("absent.json"), reqwest::Client::new())
            .unwrap_err();
    assert!(missing.to_string().contains("absent.json"), "{missing}");
}
