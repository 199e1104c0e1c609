-- Create invoice_lines table
--
-- Revision ID: 0e6d2b8f4a59
-- Revises: c7e14f9a3d20
-- Create Date: 2026-11-10 11:30:00
-- Allow: drop_table the downgrade removes the table this revision creates

-- migrate:upgrade
CREATE TABLE invoice_lines (
    id bigint GENERATED ALWAYS AS IDENTITY,
    invoice_id bigint NOT NULL,
    task_id bigint,
    description text NOT NULL,
    quantity integer NOT NULL DEFAULT 1,
    unit_price_cents bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invoice_lines_pkey PRIMARY KEY (id),
    CONSTRAINT invoice_lines_invoice_id_fkey FOREIGN KEY (invoice_id)
        REFERENCES invoices (id) ON DELETE CASCADE,
    CONSTRAINT invoice_lines_task_id_fkey FOREIGN KEY (task_id)
        REFERENCES tasks (id) ON DELETE SET NULL,
    CONSTRAINT invoice_lines_quantity_check CHECK (quantity > 0),
    CONSTRAINT invoice_lines_unit_price_cents_check CHECK (unit_price_cents >= 0)
);

CREATE INDEX invoice_lines_invoice_id_idx ON invoice_lines (invoice_id);
CREATE INDEX invoice_lines_task_id_idx ON invoice_lines (task_id);

-- migrate:downgrade
DROP INDEX invoice_lines_task_id_idx;
DROP INDEX invoice_lines_invoice_id_idx;
DROP TABLE invoice_lines;
