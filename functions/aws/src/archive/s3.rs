//! S3 GetObject for the archive function: the signed, streaming client of
//! `snapwatch_aws_inventory::s3` (no `aws-sdk-s3` in the build; see its README section).

use super::{ObjectBody, ObjectError, ObjectReader, ObjectRef};
use snapwatch_aws_inventory::s3::S3Body;
use snapwatch_aws_inventory::{S3Client, S3Error};

fn object_error(err: S3Error) -> ObjectError {
    ObjectError {
        message: err.to_string(),
        retryable: err.is_retryable(),
        source: Some(Box::new(err)),
    }
}

impl ObjectReader for S3Client {
    type Body = S3Body;

    async fn open(&self, object: &ObjectRef) -> Result<S3Body, ObjectError> {
        let body = self
            .get_object(&object.bucket, &object.key)
            .await
            .map_err(object_error)?;
        if let (Some(notified), Some(read)) = (&object.etag, &body.etag) {
            if notified != read {
                // Overwritten since the notification: the newer object's own notification
                // follows, and reading it now does no harm (facts and claims are idempotent).
                tracing::info!(object = %object.url(), notified = %notified, read = %read, "object changed since its notification");
            }
        }
        Ok(body)
    }
}

impl ObjectBody for S3Body {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ObjectError> {
        S3Body::next_chunk(self)
            .await
            .map(|chunk| chunk.map(Vec::from))
            .map_err(object_error)
    }
}
