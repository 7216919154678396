//! Which archive objects are finished: one item per object version in the chain-state table,
//! `pk = "object#s3://BUCKET/KEY"`, `sk = "version#ID"` (versioned buckets) or `"etag#ETAG"`,
//! written once the object's every record was handled, with the table's TTL on `expires_at`.
//!
//! The item is only an optimisation against rereading: facts and alert claims are idempotent, so
//! an object read twice (two deliveries racing, or a crash between the last record and the
//! ledger write) still alerts once.

use super::ObjectRef;
use crate::dynamo::classify;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use snapwatch_core::ports::StoreError;
use std::collections::HashMap;
use std::future::Future;

/// Remembers finished objects.
pub trait ObjectLedger: Send + Sync {
    /// Whether this object version was finished before.
    fn is_finished(
        &self,
        object: &ObjectRef,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Records it finished at `now`, remembered until `expires_at`.
    fn finish(
        &self,
        object: &ObjectRef,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The ledger in the DynamoDB chain-state table.
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }
}

/// The item key of one object version. Without version id or ETag the key alone names it.
pub fn ledger_key(object: &ObjectRef) -> (String, String) {
    let pk = format!("object#{}", object.url());
    let sk = match (&object.version_id, &object.etag) {
        (Some(version), _) => format!("version#{version}"),
        (None, Some(etag)) => format!("etag#{etag}"),
        (None, None) => "object".to_string(),
    };
    (pk, sk)
}

fn key(object: &ObjectRef) -> HashMap<String, AttributeValue> {
    let (pk, sk) = ledger_key(object);
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(pk)),
        ("sk".to_string(), AttributeValue::S(sk)),
    ])
}

impl ObjectLedger for DynamoLedger {
    async fn is_finished(&self, object: &ObjectRef) -> Result<bool, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(object)))
            .consistent_read(true)
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| classify("GetItem (object ledger)", e))?;
        Ok(item.item.is_some_and(|i| !i.is_empty()))
    }

    async fn finish(
        &self,
        object: &ObjectRef,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // UpdateItem, the one write the functions' role already holds (no PutItem grant).
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(object)))
            .update_expression("SET finished_at = :now, expires_at = :exp")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(
                ":exp",
                AttributeValue::N(expires_at.timestamp().to_string()),
            )
            .send()
            .await
            .map_err(|e| classify("UpdateItem (object ledger)", e))?;
        Ok(())
    }
}
