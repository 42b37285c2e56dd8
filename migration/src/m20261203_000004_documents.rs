//! The main job's tables: the mark base, documents and their items, policies, and the evidence of
//! every ЧЗ exchange.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
-- A tenant's marks, keyed by КИ: what iMark knows of each.
CREATE TABLE marks (
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    cis                  text NOT NULL,
    status               text NOT NULL CHECK (status IN ('available', 'sold')),
    gtin                 text,
    -- the last per-code object ЧЗ answered for this mark, and when
    truemark_state       jsonb,
    truemark_checked_at  timestamptz,
    store_id             uuid,
    document_id          uuid,
    sold_at              timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, cis)
);
CREATE INDEX marks_sold ON marks (tenant_id, updated_at) WHERE status = 'sold';

-- A POS document, keyed for idempotency by the POS's own id within its store.
CREATE TABLE documents (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    store_id             uuid NOT NULL,
    pos_document_id      text NOT NULL,
    kind                 text NOT NULL CHECK (kind IN ('sale', 'return', 'check')),
    fiscal_drive_number  text NOT NULL,
    request_hash         bytea NOT NULL,
    verdict              text NOT NULL,
    mode                 text NOT NULL,
    req_id               text,
    answer               jsonb NOT NULL,
    voided_at            timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, store_id, pos_document_id),
    FOREIGN KEY (tenant_id, store_id) REFERENCES stores (tenant_id, id)
);

CREATE TABLE document_items (
    document_id    uuid NOT NULL REFERENCES documents (id),
    position       integer NOT NULL,
    cis            text,
    verdict        text NOT NULL,
    criteria       jsonb NOT NULL,
    status_before  text,
    status_after   text,
    -- whether this item changed the mark base (a sale recorded it sold, a return available)
    applied        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (document_id, position)
);
CREATE INDEX document_items_cis ON document_items (cis);

-- Policies: the action of each criterion, for a tenant or one store, optionally one product
-- group. A missing row means the defaults.
CREATE TABLE policies (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    store_id       uuid,
    product_group  integer,
    preset         text NOT NULL,
    overrides      jsonb NOT NULL DEFAULT '{}',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, store_id) REFERENCES stores (tenant_id, id)
);
CREATE UNIQUE INDEX policies_scope
    ON policies (tenant_id, COALESCE(store_id, '00000000-0000-0000-0000-000000000000'), COALESCE(product_group, -1));

-- Every exchange with ЧЗ, kept as evidence.
CREATE TABLE truemark_exchanges (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    store_id      uuid,
    document_id   uuid,
    endpoint      text NOT NULL,
    method        text NOT NULL,
    url           text NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   integer NOT NULL,
    http_status   integer,
    outcome       text,
    req_id        text,
    request_body  text,
    answer_body   text,
    error         text,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX truemark_exchanges_document ON truemark_exchanges (document_id);
CREATE INDEX truemark_exchanges_tenant_time ON truemark_exchanges (tenant_id, started_at);
"#;

const DOWN: &str = r#"
DROP TABLE truemark_exchanges;
DROP TABLE policies;
DROP TABLE document_items;
DROP TABLE documents;
DROP TABLE marks;
"#;

sql_migration!(UP, DOWN);
