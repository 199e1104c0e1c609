-- Link notifications to invoices
--
-- Revision ID: 7c5e9b2a0d36
-- Revises: a4f83c1e6b07
-- Create Date: 2026-11-13 09:00:00
-- Depends On: c7e14f9a3d20
-- Allow: drop_column the downgrade removes the column this revision adds

-- migrate:upgrade
-- Needs the invoices table from the billing branch (see Depends On) but stays
-- on the notifications branch.  The new column is all NULL, so the FK check
-- finds nothing to verify.
ALTER TABLE notifications ADD COLUMN invoice_id bigint;
ALTER TABLE notifications ADD CONSTRAINT notifications_invoice_id_fkey
    FOREIGN KEY (invoice_id) REFERENCES invoices (id) ON DELETE CASCADE;
CREATE INDEX notifications_invoice_id_idx ON notifications (invoice_id);

-- migrate:downgrade
DROP INDEX notifications_invoice_id_idx;
ALTER TABLE notifications DROP CONSTRAINT notifications_invoice_id_fkey;
ALTER TABLE notifications DROP COLUMN invoice_id;
