-- Idempotency receipts remember what they were claimed for: the route (`partner/mapping`) and
-- the SM3 digest (hex) of the partner's body (after decryption), so the same partner message id
-- on another route or with another body is refused instead of answered as a duplicate.
-- Receipts written before this migration have neither (NULL) and are compared by id alone.
-- first_at_ms: when the receipt was first claimed (never changed, unlike created_at_ms, which a
-- release resets); receipts older than the retention ([state] receipt_retention_days) are purged.
ALTER TABLE hub_ingress_receipts ADD COLUMN route TEXT;
ALTER TABLE hub_ingress_receipts ADD COLUMN body_sm3 TEXT;
ALTER TABLE hub_ingress_receipts ADD COLUMN first_at_ms INTEGER NOT NULL DEFAULT 0;
UPDATE hub_ingress_receipts SET first_at_ms = created_at_ms;
CREATE INDEX hub_ingress_receipts_first ON hub_ingress_receipts (first_at_ms);
