# One account: the Functions host's own storage (leases, Event Hubs checkpoints, the rejects
# container, Event Grid dead letters) and the chain-state table.
resource "azurerm_storage_account" "this" {
  #checkov:skip=CKV_AZURE_33:Queue service logging: the app uses no queues; the host's queue use is internal.
  #checkov:skip=CKV_AZURE_35:Default deny needs VNet integration or private endpoints, which consumption plans lack; access is authenticated (key for the host, Entra ID for the state table) and anonymous access is off.
  #checkov:skip=CKV_AZURE_59:Same as CKV_AZURE_35: the function host reaches the account over its public endpoint.
  #checkov:skip=CKV_AZURE_206:Replication is a cost choice; chain state is rebuilt from the Activity Log within its window.
  #checkov:skip=CKV2_AZURE_1:Customer-managed keys are an organisation policy choice; Microsoft-managed encryption at rest applies.
  #checkov:skip=CKV2_AZURE_33:Private endpoints need a VNet the module does not own; see CKV_AZURE_35.
  #checkov:skip=CKV2_AZURE_40:The Functions host's AzureWebJobsStorage connection uses the account key; the detector's own data path (the table) uses the managed identity.
  #checkov:skip=CKV2_AZURE_41:No SAS tokens are issued by the module; the host manages its own.
  #checkov:skip=CKV2_AZURE_38:Soft delete for blobs covers only host bookkeeping and rejects; enable it by policy if wanted.
  name                            = "snapwatch${var.name_suffix}"
  resource_group_name             = azurerm_resource_group.this.name
  location                        = azurerm_resource_group.this.location
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  public_network_access_enabled   = true
  tags                            = local.tags
}

# Chain state: facts per resource and alert claims (functions/azure/src/table).
resource "azurerm_storage_table" "state" {
  #checkov:skip=CKV2_AZURE_20:Reads of the state table are the detector's own (one identity, Table Data Contributor on this table only); read logging would need a Log Analytics workspace the module does not own. Enable it by policy where wanted.
  name                 = "snapwatch"
  storage_account_name = azurerm_storage_account.this.name
}

# Records and findings the function could not process, kept for replay.
resource "azurerm_storage_container" "rejects" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging for this internal container adds cost without a reader to audit.
  name                  = "snapwatch-rejects"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

# Event Grid dead letters after its own retries run out.
resource "azurerm_storage_container" "dead_letters" {
  #checkov:skip=CKV2_AZURE_21:See the rejects container.
  name                  = "snapwatch-deadletter"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}
