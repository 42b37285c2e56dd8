//! The CDN list of each (ЧЗ base URL, region), the check mode of each tenant, and the mode
//! transitions kept as evidence.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE TABLE cdn_hosts (
    id                    uuid PRIMARY KEY,
    base_url              text NOT NULL,
    region                text NOT NULL,
    host_url              text NOT NULL,
    is_current            boolean NOT NULL DEFAULT false,
    -- rank among the healthy hosts, 1 = lowest latency; null = not ranked (unhealthy, unchecked)
    rank                  integer,
    unavailable_until     timestamptz,
    server_avg_time_ms    integer,
    measured_latency_ms   integer,
    last_checked_at       timestamptz,
    last_outcome          text,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    first_seen_at         timestamptz NOT NULL DEFAULT now(),
    last_seen_at          timestamptz NOT NULL DEFAULT now(),
    -- set when discovery no longer lists the host
    retired_at            timestamptz,
    UNIQUE (base_url, region, host_url)
);
-- at most one current host per (base URL, region)
CREATE UNIQUE INDEX cdn_hosts_one_current ON cdn_hosts (base_url, region) WHERE is_current;

-- The check mode of a tenant on one (base URL, region): online, or the no-check mode of ПП 1944.
CREATE TABLE truemark_modes (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    base_url    text NOT NULL,
    region      text NOT NULL,
    mode        text NOT NULL CHECK (mode IN ('online', 'no_check')),
    reason      text NOT NULL,
    since       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, base_url, region)
);
CREATE INDEX truemark_modes_no_check ON truemark_modes (base_url, region) WHERE mode = 'no_check';

-- Every change of mode, with the exchanges that caused it: the justification of sales made
-- without a check. Rows are never changed.
CREATE TABLE mode_transitions (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    base_url    text NOT NULL,
    region      text NOT NULL,
    from_mode   text NOT NULL,
    to_mode     text NOT NULL,
    reason      text NOT NULL,
    exchanges   jsonb NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mode_transitions_tenant_at ON mode_transitions (tenant_id, at);
"#;

const DOWN: &str = r#"
DROP TABLE mode_transitions;
DROP TABLE truemark_modes;
DROP TABLE cdn_hosts;
"#;

sql_migration!(UP, DOWN);
