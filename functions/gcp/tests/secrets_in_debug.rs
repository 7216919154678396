//! No credential reaches `Debug` output: the settings and the clients `main` builds from them,
//! made through their public constructors with a recognisable webhook, formatted with `{:?}`
//! and `{:#?}`. (The Firestore client's token cache holds a `Secret` too; filling it needs a
//! metadata server, which `FirestoreClient` cannot be pointed at yet.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use snapwatch_gcp::firestore::{FirestoreClient, FirestoreStore};
use snapwatch_gcp::settings::{env, Settings};
use snapwatch_slack::{RetryPolicy, SlackSink, WebhookUrl};
use std::collections::HashMap;

const WEBHOOK_PART: &str = "WEBHOOK-SECRET-5b8e";

fn assert_hides_secrets(what: &str, value: &impl std::fmt::Debug) {
    for shown in [format!("{value:?}"), format!("{value:#?}")] {
        assert!(
            !shown.contains(WEBHOOK_PART),
            "{what} prints the webhook: {shown}"
        );
    }
}

#[test]
fn settings_and_clients_print_no_secret() {
    let webhook = format!("https://hooks.slack.com/services/T0/B0/{WEBHOOK_PART}");
    for emulator in [None, Some("127.0.0.1:8686")] {
        let mut vars: HashMap<&str, String> = HashMap::from([
            (env::FIRESTORE_PROJECT, "demo".to_string()),
            (env::SLACK_WEBHOOK_URL, webhook.clone()),
        ]);
        if let Some(host) = emulator {
            vars.insert(env::FIRESTORE_EMULATOR_HOST, host.into());
        }
        let settings = Settings::from_lookup(|name| vars.get(name).cloned()).unwrap();
        assert_hides_secrets("Settings", &settings);
        let client = FirestoreClient::new(settings.firestore.clone()).unwrap();
        assert_hides_secrets("FirestoreClient", &client);
        let store =
            FirestoreStore::new(settings.firestore.clone(), settings.collections.clone()).unwrap();
        assert_hides_secrets("FirestoreStore", &store);
        let url = settings.slack_webhook_url.as_ref().unwrap();
        let slack = SlackSink::new(
            WebhookUrl::parse(url.expose()).unwrap(),
            RetryPolicy::default(),
        );
        assert_hides_secrets("SlackSink", &slack.unwrap());
    }
}
