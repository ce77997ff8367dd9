-- hisn-audit-log migration 0001: tables, append functions, append-only triggers, retention.
-- Run by PgStore::migrate as the table owner (never the application role).
CREATE TABLE IF NOT EXISTS hisn_audit_log (
    tenant      text        NOT NULL,
    seq         bigint      NOT NULL CHECK (seq >= 0),
    record      bytea       NOT NULL,
    link        bytea       NOT NULL CHECK (length(link) = 32),
    recorded_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    entity_type text        NOT NULL,
    entity_id   text        NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE IF NOT EXISTS hisn_audit_subject (
    tenant  text   NOT NULL,
    subject text   NOT NULL,
    seq     bigint NOT NULL,
    PRIMARY KEY (tenant, subject, seq)
);
CREATE TABLE IF NOT EXISTS hisn_audit_checkpoint (
    tenant text   NOT NULL,
    size   bigint NOT NULL,
    note   text   NOT NULL,
    PRIMARY KEY (tenant, size, note)
);
-- Where each tenant's chain starts after a retention prune (the newest row per
-- tenant counts): the first sequence number held and the link of the record
-- before it. Written only by hisn_audit_prune_rows.
CREATE TABLE IF NOT EXISTS hisn_audit_prune_point (
    tenant     text   NOT NULL,
    first_seq  bigint NOT NULL CHECK (first_seq > 0),
    start_prev bytea  NOT NULL CHECK (length(start_prev) = 32),
    prune_seq  bigint NOT NULL CHECK (prune_seq >= first_seq),
    db_user    text   NOT NULL DEFAULT session_user,
    PRIMARY KEY (tenant, first_seq)
);
-- Take the tenant's chain lock (held to the end of the transaction), then read
-- the head. A volatile function's statements each take a fresh snapshot under
-- READ COMMITTED, so the head includes every append committed before the lock.
CREATE OR REPLACE FUNCTION hisn_audit_lock_head(p_tenant text, OUT seq bigint, OUT link bytea)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('hisn-audit-log/' || p_tenant, 0));
    SELECT l.seq, l.link INTO seq, link FROM hisn_audit_log l
        WHERE l.tenant = p_tenant ORDER BY l.seq DESC LIMIT 1;
END $$;
-- The one-round-trip append: take the tenant's chain lock, read the head and
-- insert the record (and its subject-index rows) only if the head is the one
-- the client chained the record to (p_seq - 1 with link p_prev; none for
-- p_seq = 0). Otherwise insert nothing and return the current head, so the
-- client re-chains and retries. Runs as the caller (SECURITY INVOKER): the
-- application role still needs INSERT on the tables.
CREATE OR REPLACE FUNCTION hisn_audit_append(
    p_tenant text, p_seq bigint, p_prev bytea, p_record bytea, p_link bytea,
    p_micros bigint, p_actor text, p_action text, p_entity_type text,
    p_entity_id text, p_subjects text[],
    OUT appended boolean, OUT seq bigint, OUT link bytea)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('hisn-audit-log/' || p_tenant, 0));
    SELECT l.seq, l.link INTO seq, link FROM hisn_audit_log l
        WHERE l.tenant = p_tenant ORDER BY l.seq DESC LIMIT 1;
    IF (seq IS NULL AND p_seq = 0) OR (seq = p_seq - 1 AND link = p_prev) THEN
        INSERT INTO hisn_audit_log
            (tenant, seq, record, link, recorded_at, actor, action, entity_type, entity_id)
            VALUES (p_tenant, p_seq, p_record, p_link,
                    timestamptz 'epoch' + p_micros * interval '1 microsecond',
                    p_actor, p_action, p_entity_type, p_entity_id);
        INSERT INTO hisn_audit_subject (tenant, subject, seq)
            SELECT p_tenant, s, p_seq FROM unnest(p_subjects) AS s;
        appended := true;
        seq := p_seq;
        link := p_link;
    ELSE
        appended := false;
    END IF;
END $$;
CREATE OR REPLACE FUNCTION hisn_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hisn audit tables are append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['hisn_audit_log', 'hisn_audit_subject', 'hisn_audit_checkpoint', 'hisn_audit_prune_point'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_no_change', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION hisn_audit_refuse()', t || '_no_change', t);
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_no_change');
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_no_truncate', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION hisn_audit_refuse()', t || '_no_truncate', t);
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_no_truncate');
    END LOOP;
END $$;
-- Retention: delete tenant p_tenant's rows up to p_through, once the caller
-- has appended the prune record (p_prune_seq) in this transaction, and record
-- where the chain now starts. SECURITY DEFINER, so it runs as the owner, the
-- only role that may step past the append-only triggers: they are disabled
-- and re-enabled inside this transaction, which no other session sees (the
-- catalog change is invisible before commit, and DISABLE TRIGGER's SHARE ROW
-- EXCLUSIVE lock keeps every other writer out until then). Catalog names are
-- qualified and the search_path is pinned below, as a SECURITY DEFINER
-- function requires. EXECUTE is revoked from PUBLIC: only the owner prunes.
CREATE OR REPLACE FUNCTION hisn_audit_prune_rows(
    p_tenant text, p_through bigint, p_boundary bytea, p_prune_seq bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS $$
DECLARE
    v_first bigint;
    v_deleted bigint;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended('hisn-audit-log/' || p_tenant, 0::bigint));
    SELECT COALESCE(max(pp.first_seq), 0) INTO v_first
        FROM hisn_audit_prune_point pp WHERE pp.tenant = p_tenant;
    IF p_through IS NULL OR p_through < v_first THEN
        RAISE EXCEPTION 'hisn audit prune refused: range not held'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hisn_audit_log l
                   WHERE l.tenant = p_tenant AND l.seq = p_through AND l.link = p_boundary) THEN
        RAISE EXCEPTION 'hisn audit prune refused: boundary link does not match'
            USING ERRCODE = 'check_violation';
    END IF;
    IF p_prune_seq <= p_through OR NOT EXISTS (
            SELECT 1 FROM hisn_audit_log l
            WHERE l.tenant = p_tenant AND l.seq = p_prune_seq AND l.action = 'audit.prune') THEN
        RAISE EXCEPTION 'hisn audit prune refused: no prune record after the range'
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO hisn_audit_prune_point (tenant, first_seq, start_prev, prune_seq)
        VALUES (p_tenant, p_through + 1, p_boundary, p_prune_seq);
    ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change;
    ALTER TABLE hisn_audit_subject DISABLE TRIGGER hisn_audit_subject_no_change;
    DELETE FROM hisn_audit_subject s WHERE s.tenant = p_tenant AND s.seq <= p_through;
    DELETE FROM hisn_audit_log l WHERE l.tenant = p_tenant AND l.seq <= p_through;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    ALTER TABLE hisn_audit_log ENABLE ALWAYS TRIGGER hisn_audit_log_no_change;
    ALTER TABLE hisn_audit_subject ENABLE ALWAYS TRIGGER hisn_audit_subject_no_change;
    RETURN v_deleted;
END $$;
-- pg_catalog first (built-ins cannot be shadowed), then the schema holding the
-- audit tables (it must not be writable by untrusted roles; the default from
-- PostgreSQL 15), pg_temp last.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION hisn_audit_prune_rows(text, bigint, bytea, bigint) '
                   'SET search_path = pg_catalog, %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION hisn_audit_prune_rows(text, bigint, bytea, bigint) FROM PUBLIC;
