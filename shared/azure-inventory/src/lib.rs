//! The Azure half of the snapshot baseline: list every managed disk, snapshot and Compute
//! Gallery of a subscription through Resource Manager (`GET …/providers/Microsoft.Compute/disks`,
//! `…/snapshots` and `…/galleries`, following `nextLink`), with what makes their data reachable
//! from outside (`diskState` `ActiveSAS`, `networkAccessPolicy`, `publicNetworkAccess`,
//! `dataAccessAuthMode`; a gallery's `sharingProfile`), as a
//! [`snapwatch_core::inventory::Inventory`].
//!
//! The caller hands in the bearer tokens for `https://management.azure.com/` through
//! [`TokenSource`]: the function's managed identity, or the CLI's service principal / `az` login.
//! The mapping of one listed resource to an inventory item is the core's
//! ([`snapwatch_core::parse::azure::inventory_item`]), so ids match the event parser's.
//!
//! ```no_run
//! # async fn run(tokens: impl snapwatch_azure_inventory::TokenSource)
//! # -> Result<(), snapwatch_azure_inventory::InventoryError> {
//! use snapwatch_azure_inventory::{ArmLister, ARM_ENDPOINT};
//! let endpoint = reqwest::Url::parse(ARM_ENDPOINT).expect("a URL");
//! let lister = ArmLister::new(reqwest::Client::new(), endpoint, tokens);
//! let listing = lister.list_subscription("00000000-0000-0000-0000-000000000000", chrono::Utc::now()).await?;
//! # Ok(()) }
//! ```

mod error;
mod lister;

pub use error::InventoryError;
pub use lister::{
    ArmLister, Listing, RejectedItem, TokenSource, API_VERSION, ARM_ENDPOINT, ARM_RESOURCE,
    BASELINE_REGION, DEFAULT_RETRY, GALLERY_API_VERSION,
};
