-- Create invoices table
--
-- Revision ID: c7e14f9a3d20
-- Revises: 5b0a8d2c9e14
-- Create Date: 2026-11-10 11:00:00
-- Branch Labels: billing
-- Allow: drop_table the downgrade removes the table this revision creates

-- migrate:upgrade
-- Invoices are financial records, so deleting a user who still has invoices is
-- refused (RESTRICT) rather than cascaded.
CREATE TABLE invoices (
    id bigint GENERATED ALWAYS AS IDENTITY,
    customer_id bigint NOT NULL,
    number text NOT NULL,
    currency text NOT NULL DEFAULT 'EUR',
    total_cents bigint NOT NULL DEFAULT 0,
    metadata jsonb NOT NULL DEFAULT '{}',
    issued_at timestamptz,
    paid_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invoices_pkey PRIMARY KEY (id),
    CONSTRAINT invoices_number_key UNIQUE (number),
    CONSTRAINT invoices_customer_id_fkey FOREIGN KEY (customer_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT invoices_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT invoices_total_cents_check CHECK (total_cents >= 0)
);

CREATE INDEX invoices_customer_id_idx ON invoices (customer_id);

-- migrate:downgrade
DROP INDEX invoices_customer_id_idx;
DROP TABLE invoices;
