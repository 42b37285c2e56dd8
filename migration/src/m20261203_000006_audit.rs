//! The tamper-evident audit log: every store's records (and each tenant's own) form a hash chain,
//! the evidence tables are append-only and partitioned by month, and anchors keep the chain
//! verifiable after old months are dropped.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
-- Monthly partitions of the evidence tables, [from, to) by month; existing ones are kept.
CREATE FUNCTION evidence_ensure_partitions(from_month date, to_month date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', from_month)::date;
    made integer := 0;
    parent text;
    child text;
BEGIN
    -- Replicas making the same months queue here instead of failing on each other's tables.
    PERFORM pg_advisory_xact_lock(hashtext('imark:evidence-partitions'));
    WHILE month < to_month LOOP
        FOREACH parent IN ARRAY ARRAY['audit_records', 'truemark_exchanges'] LOOP
            child := format('%s_y%sm%s', parent, to_char(month, 'YYYY'), to_char(month, 'MM'));
            IF to_regclass(child) IS NULL THEN
                -- A month whose rows already sit in the default partition cannot get its own;
                -- it stays there, and the months after it are still made.
                BEGIN
                    EXECUTE format(
                        'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                        child, parent, month::timestamptz,
                        (month + interval '1 month')::timestamptz);
                    -- Row triggers come down from the parent; TRUNCATE ones do not.
                    EXECUTE format(
                        'CREATE TRIGGER %I BEFORE TRUNCATE ON %I '
                        'FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change()',
                        child || '_no_truncate', child);
                    made := made + 1;
                EXCEPTION WHEN check_violation THEN
                    RAISE WARNING 'partition % not made: %', child, SQLERRM;
                END;
            END IF;
        END LOOP;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN made;
END $$;

-- Evidence is never changed or removed row by row; whole months leave only by retention.
CREATE FUNCTION evidence_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- Every ЧЗ exchange, now partitioned by the month it started in.
ALTER TABLE truemark_exchanges RENAME TO truemark_exchanges_unpartitioned;
DROP INDEX truemark_exchanges_document;
DROP INDEX truemark_exchanges_tenant_time;
CREATE TABLE truemark_exchanges (
    id            uuid NOT NULL,
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
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE TABLE truemark_exchanges_default PARTITION OF truemark_exchanges DEFAULT;
CREATE INDEX truemark_exchanges_document ON truemark_exchanges (document_id);
CREATE INDEX truemark_exchanges_tenant_time ON truemark_exchanges (tenant_id, started_at);
CREATE INDEX truemark_exchanges_id ON truemark_exchanges (id);

-- One chain per store, and one per tenant (chain = the nil uuid) for what concerns no store.
-- `content` is the record exactly as hashed; the other columns repeat parts of it for queries,
-- and verification checks that they agree.
CREATE TABLE audit_records (
    id           uuid NOT NULL,
    tenant_id    uuid NOT NULL,
    chain        uuid NOT NULL,
    seq          bigint NOT NULL,
    at           timestamptz NOT NULL,
    kind         text NOT NULL,
    store_id     uuid,
    document_id  uuid,
    exchange_id  uuid,
    actor        text,
    action       text,
    verdict      text,
    mode         text,
    req_id       text,
    cis          text[] NOT NULL DEFAULT '{}',
    criteria     text[] NOT NULL DEFAULT '{}',
    content      text NOT NULL,
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE audit_records_default PARTITION OF audit_records DEFAULT;
CREATE INDEX audit_records_chain ON audit_records (tenant_id, chain, seq);
CREATE INDEX audit_records_time ON audit_records (tenant_id, at, id);
CREATE INDEX audit_records_req_id ON audit_records (tenant_id, req_id) WHERE req_id IS NOT NULL;
CREATE INDEX audit_records_cis ON audit_records USING gin (cis);
CREATE INDEX audit_records_document ON audit_records (tenant_id, document_id)
    WHERE document_id IS NOT NULL;
CREATE INDEX audit_records_exchange ON audit_records (tenant_id, exchange_id)
    WHERE exchange_id IS NOT NULL;

-- The newest record of every chain: appends queue on its row.
CREATE TABLE audit_heads (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    chain      uuid NOT NULL,
    seq        bigint NOT NULL,
    hash       bytea NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, chain)
);

-- The last record of a chain in a month that retention dropped: the chain goes on from it.
CREATE TABLE audit_anchors (
    tenant_id  uuid NOT NULL,
    chain      uuid NOT NULL,
    seq        bigint NOT NULL,
    hash       bytea NOT NULL,
    at         timestamptz NOT NULL,
    month      date NOT NULL,
    PRIMARY KEY (tenant_id, chain, seq)
);

-- Appends one record to its chain: the next number, a time no earlier than the chain's last,
-- and hash = SHA-256(previous hash || id || seq || microseconds since the epoch || content).
CREATE FUNCTION audit_append(
    p_id uuid, p_tenant uuid, p_chain uuid, p_kind text, p_store uuid, p_document uuid,
    p_exchange uuid, p_actor text, p_action text, p_verdict text, p_mode text, p_req_id text,
    p_cis text[], p_criteria text[], p_content text
) RETURNS TABLE (seq bigint, at timestamptz, hash bytea)
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash bytea;
    head_at timestamptz;
    new_at timestamptz;
    new_hash bytea;
BEGIN
    INSERT INTO audit_heads AS h (tenant_id, chain, seq, hash, at)
    VALUES (p_tenant, p_chain, 0, '\x0000000000000000000000000000000000000000000000000000000000000000', '-infinity')
    ON CONFLICT DO NOTHING;
    SELECT h.seq, h.hash, h.at INTO head_seq, head_hash, head_at
    FROM audit_heads h WHERE h.tenant_id = p_tenant AND h.chain = p_chain FOR UPDATE;
    new_at := greatest(date_trunc('microseconds', clock_timestamp()), head_at);
    new_hash := sha256(
        head_hash || uuid_send(p_id) || int8send(head_seq + 1)
        || int8send((extract(epoch FROM new_at) * 1000000)::bigint)
        || convert_to(p_content, 'UTF8'));
    INSERT INTO audit_records (id, tenant_id, chain, seq, at, kind, store_id, document_id,
        exchange_id, actor, action, verdict, mode, req_id, cis, criteria, content, prev_hash, hash)
    VALUES (p_id, p_tenant, p_chain, head_seq + 1, new_at, p_kind, p_store, p_document,
        p_exchange, p_actor, p_action, p_verdict, p_mode, p_req_id,
        coalesce(p_cis, '{}'), coalesce(p_criteria, '{}'), p_content, head_hash, new_hash);
    UPDATE audit_heads h SET seq = head_seq + 1, hash = new_hash, at = new_at
    WHERE h.tenant_id = p_tenant AND h.chain = p_chain;
    RETURN QUERY SELECT head_seq + 1, new_at, new_hash;
END $$;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER truemark_exchanges_append_only BEFORE UPDATE OR DELETE ON truemark_exchanges
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER truemark_exchanges_no_truncate BEFORE TRUNCATE ON truemark_exchanges
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER mode_transitions_append_only BEFORE UPDATE OR DELETE ON mode_transitions
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER audit_records_default_no_truncate BEFORE TRUNCATE ON audit_records_default
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER truemark_exchanges_default_no_truncate BEFORE TRUNCATE ON truemark_exchanges_default
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER mode_transitions_no_truncate BEFORE TRUNCATE ON mode_transitions
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON audit_heads
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();

-- A chain's head only moves forward, one record at a time, and is never removed.
CREATE FUNCTION audit_head_advance_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.tenant_id <> OLD.tenant_id OR NEW.chain <> OLD.chain
        OR NEW.seq <> OLD.seq + 1 OR NEW.at < OLD.at THEN
        RAISE EXCEPTION 'audit_heads only advance by one record: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_heads_advance_only BEFORE UPDATE OR DELETE ON audit_heads
    FOR EACH ROW EXECUTE FUNCTION audit_head_advance_only();

-- The months around now, and every month the existing exchanges fall in.
SELECT evidence_ensure_partitions(
    LEAST((SELECT min(started_at) FROM truemark_exchanges_unpartitioned), now() - interval '1 month')::date,
    (now() + interval '4 months')::date);
INSERT INTO truemark_exchanges SELECT * FROM truemark_exchanges_unpartitioned;
DROP TABLE truemark_exchanges_unpartitioned;
"#;

const DOWN: &str = r#"
DROP TRIGGER mode_transitions_append_only ON mode_transitions;
DROP TRIGGER mode_transitions_no_truncate ON mode_transitions;
DROP TABLE audit_anchors;
DROP TABLE audit_heads;
DROP FUNCTION audit_head_advance_only;
DROP TABLE audit_records;
DROP FUNCTION audit_append;
ALTER TABLE truemark_exchanges RENAME TO truemark_exchanges_partitioned;
DROP INDEX truemark_exchanges_document;
DROP INDEX truemark_exchanges_tenant_time;
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
INSERT INTO truemark_exchanges SELECT * FROM truemark_exchanges_partitioned;
DROP TABLE truemark_exchanges_partitioned;
CREATE INDEX truemark_exchanges_document ON truemark_exchanges (document_id);
CREATE INDEX truemark_exchanges_tenant_time ON truemark_exchanges (tenant_id, started_at);
DROP FUNCTION evidence_refuse_change;
DROP FUNCTION evidence_ensure_partitions;
"#;

sql_migration!(UP, DOWN);
