//! Appends several records to one audit chain in one call, under one lock of its head: a
//! document's exchanges and the document itself cost one round trip instead of one each.
//! The one-record `audit_append` stays: pods of the previous release still call it while a
//! rollout replaces them (add first, drop in a later release).

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
            ARRAY(SELECT e.value FROM jsonb_array_elements_text(coalesce(r -> 'cis', '[]'))
                WITH ORDINALITY AS e (value, n) ORDER BY e.n),
            ARRAY(SELECT e.value FROM jsonb_array_elements_text(coalesce(r -> 'criteria', '[]'))
                WITH ORDINALITY AS e (value, n) ORDER BY e.n),
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

"#;

const DOWN: &str = r#"
DROP FUNCTION audit_append_all;
"#;

sql_migration!(UP, DOWN);
