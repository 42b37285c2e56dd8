//! Tenants, their stores, API keys (as hashes) and sealed ЧЗ credentials.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    inn         text CHECK (inn ~ '^[0-9]{10}([0-9]{2})?$'),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stores (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    code        text NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    address     text,
    inn         text CHECK (inn ~ '^[0-9]{10}([0-9]{2})?$'),
    kpp         text CHECK (kpp ~ '^[0-9]{9}$'),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, code),
    -- lets child tables reference (tenant, store) pairs, so a row can never mix two tenants
    UNIQUE (tenant_id, id)
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    store_id      uuid,
    role          text NOT NULL CHECK (role IN ('hq_admin', 'store', 'auditor')),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix        text NOT NULL,
    key_hash      bytea NOT NULL UNIQUE,
    all_stores    boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    replaced_by   uuid REFERENCES api_keys (id),
    FOREIGN KEY (tenant_id, store_id) REFERENCES stores (tenant_id, id),
    CHECK ((role = 'store') = (store_id IS NOT NULL)),
    CHECK (all_stores = false OR role = 'auditor')
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

-- The stores an auditor key may read when it does not cover the whole tenant.
CREATE TABLE api_key_stores (
    api_key_id  uuid NOT NULL REFERENCES api_keys (id),
    tenant_id   uuid NOT NULL,
    store_id    uuid NOT NULL,
    PRIMARY KEY (api_key_id, store_id),
    FOREIGN KEY (tenant_id, store_id) REFERENCES stores (tenant_id, id)
);

CREATE TABLE truemark_credentials (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    store_id          uuid,
    base_url          text NOT NULL,
    region            text NOT NULL,
    key_ciphertext    bytea NOT NULL,
    key_nonce         bytea NOT NULL,
    master_key_id     text NOT NULL,
    key_last4         text NOT NULL,
    key_expires_on    date,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, store_id) REFERENCES stores (tenant_id, id)
);
CREATE UNIQUE INDEX truemark_credentials_tenant_default
    ON truemark_credentials (tenant_id) WHERE store_id IS NULL;
CREATE UNIQUE INDEX truemark_credentials_store_override
    ON truemark_credentials (tenant_id, store_id) WHERE store_id IS NOT NULL;
"#;

const DOWN: &str = r#"
DROP TABLE truemark_credentials;
DROP TABLE api_key_stores;
DROP TABLE api_keys;
DROP TABLE stores;
DROP TABLE tenants;
"#;

sql_migration!(UP, DOWN);
