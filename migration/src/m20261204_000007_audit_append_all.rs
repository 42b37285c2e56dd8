//! Appends several records to one audit chain in one call, under one lock of its head: a
//! document's exchanges and the document itself cost one round trip instead of one each.
//! Replaces the one-record `audit_append`.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
-- p_records holds, for each record in order, its columns as a JSON object (id, kind, store_id,
-- document_id, exchange_id, actor, action, verdict, mode, req_id, cis, criteria); p_contents
-- the content that is hashed, exactly as stored. Returns the chain's new head.
CREATE FUNCTION audit_append_all(p_tenant uuid, p_chain uuid, p_records jsonb, p_contents text[])
RETURNS TABLE (seq bigint, at timestamptz, hash bytea)
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash bytea;
    head_at timestamptz;
    new_at timestamptz;
    new_hash bytea;
    r jsonb;
    i integer;
BEGIN
    IF jsonb_array_length(p_records) <> coalesce(array_length(p_contents, 1), 0) THEN
        RAISE EXCEPTION 'audit_append_all: % records with % contents',
            jsonb_array_length(p_records), coalesce(array_length(p_contents, 1), 0);
    END IF;
    INSERT INTO audit_heads AS h (tenant_id, chain, seq, hash, at)
    VALUES (p_tenant, p_chain, 0, '\x0000000000000000000000000000000000000000000000000000000000000000', '-infinity')
    ON CONFLICT DO NOTHING;
    SELECT h.seq, h.hash, h.at INTO head_seq, head_hash, head_at
    FROM audit_heads h WHERE h.tenant_id = p_tenant AND h.chain = p_chain FOR UPDATE;
    FOR i IN 1 .. jsonb_array_length(p_records) LOOP
        r := p_records -> (i - 1);
        new_at := greatest(date_trunc('microseconds', clock_timestamp()), head_at);
        new_hash := sha256(
            head_hash || uuid_send((r ->> 'id')::uuid) || int8send(head_seq + 1)
            || int8send((extract(epoch FROM new_at) * 1000000)::bigint)
            || convert_to(p_contents[i], 'UTF8'));
        INSERT INTO audit_records (id, tenant_id, chain, seq, at, kind, store_id, document_id,
            exchange_id, actor, action, verdict, mode, req_id, cis, criteria, content, prev_hash,
            hash)
        VALUES ((r ->> 'id')::uuid, p_tenant, p_chain, head_seq + 1, new_at, r ->> 'kind',
            (r ->> 'store_id')::uuid, (r ->> 'document_id')::uuid, (r ->> 'exchange_id')::uuid,
            r ->> 'actor', r ->> 'action', r ->> 'verdict', r ->> 'mode', r ->> 'req_id',
            ARRAY(SELECT jsonb_array_elements_text(coalesce(r -> 'cis', '[]'))),
            ARRAY(SELECT jsonb_array_elements_text(coalesce(r -> 'criteria', '[]'))),
            p_contents[i], head_hash, new_hash);
        -- The head moves one record at a time, as its trigger demands.
        UPDATE audit_heads h SET seq = head_seq + 1, hash = new_hash, at = new_at
        WHERE h.tenant_id = p_tenant AND h.chain = p_chain;
        head_seq := head_seq + 1;
        head_hash := new_hash;
        head_at := new_at;
    END LOOP;
    RETURN QUERY SELECT head_seq, head_at, head_hash;
END $$;

DROP FUNCTION audit_append;
"#;

const DOWN: &str = r#"
-- The one-record function as the audit migration made it.
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
DROP FUNCTION audit_append_all;
"#;

sql_migration!(UP, DOWN);
