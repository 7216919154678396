//! Azurite helpers shared by the Table Storage tests: the endpoint tests/servers/with-servers.sh
//! started, and a fresh table per test.
#![allow(dead_code)] // each test binary uses a different subset

use chrono::Utc;
use snapwatch_azure::table::client::{TableAuth, TableClient, AZURITE_ACCOUNT, AZURITE_KEY};
use snapwatch_azure::table::TableStore;

const ENDPOINT_VAR: &str = "SNAPWATCH_AZURITE_TABLE_ENDPOINT";

pub fn endpoint() -> reqwest::Url {
    let raw = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!(
            "{ENDPOINT_VAR} is not set: run under tests/servers/with-servers.sh (make test does)"
        )
    });
    reqwest::Url::parse(&raw).unwrap_or_else(|e| panic!("{ENDPOINT_VAR}={raw:?} is not a URL: {e}"))
}

/// A fresh table named after the test and the process, so reruns and parallel tests never meet.
pub async fn fresh_store(test: &str) -> TableStore {
    let table = format!(
        "sw{test}{}{}",
        std::process::id(),
        Utc::now().timestamp_subsec_nanos()
    );
    let client = TableClient::new(
        reqwest::Client::new(),
        endpoint(),
        AZURITE_ACCOUNT,
        &table,
        TableAuth::shared_key(AZURITE_ACCOUNT, AZURITE_KEY).expect("published Azurite key"),
    )
    .expect("valid table name");
    client
        .create_table()
        .await
        .expect("create the test table in Azurite");
    TableStore::new(client)
}
