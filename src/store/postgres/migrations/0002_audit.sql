-- Version 2: the audit trail.
--
-- Every instance seals its records into a chain of its own, one per run
-- (so instances never wait on each other's chain): `audit_chain` lists the
-- chains, and the last record pruned from each (the anchor the rest is
-- checked from). `audit_record` keeps each record whole as JSON, with the
-- columns its lookups need: time, principal, the patients it names.

CREATE SEQUENCE audit_chain_id AS bigint MINVALUE 1;

CREATE TABLE audit_chain (
    id          bigint PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    pruned_seq  bigint NOT NULL DEFAULT 0,
    pruned_hash bytea  NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
);

CREATE TABLE audit_record (
    chain     bigint NOT NULL REFERENCES audit_chain (id),
    seq       bigint NOT NULL,
    -- Microseconds since 1970-01-01T00:00:00Z.
    at        bigint NOT NULL,
    principal text COLLATE "C" NOT NULL,
    patients  text[] COLLATE "C" NOT NULL,
    hash      bytea  NOT NULL,
    record    jsonb  NOT NULL,
    PRIMARY KEY (chain, seq)
);

CREATE INDEX audit_record_at ON audit_record (at, chain, seq);
CREATE INDEX audit_record_principal ON audit_record (principal, at, chain, seq);
CREATE INDEX audit_record_patients ON audit_record USING gin (patients);
