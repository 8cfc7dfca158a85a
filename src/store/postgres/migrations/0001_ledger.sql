-- Version 1: the roster, the settlements and the running totals.
--
-- Each table keeps the whole record as JSON (`record`, the same fields the
-- embedded store encodes) beside the columns its reads and constraints
-- need. Identifiers compare byte by byte (COLLATE "C"), whatever the
-- database's locale, so scans come back in the order the embedded store
-- gives.

CREATE TABLE person (
    patient_id text COLLATE "C" PRIMARY KEY,
    record     jsonb NOT NULL
);

-- Settlement numbers: unique across every instance, in no promised order
-- between instances, with gaps where a batch reserved more than it used.
CREATE SEQUENCE settlement_id AS bigint MINVALUE 1;

CREATE TABLE settlement (
    id              bigint  PRIMARY KEY,
    hospital_id     text COLLATE "C" NOT NULL,
    claim_id        text COLLATE "C" NOT NULL,
    patient_id      text COLLATE "C" NOT NULL,
    year            integer NOT NULL,
    -- Business days, as days since 1970-01-01 in the fund's zone.
    settled_day     integer NOT NULL,
    reversed_day    integer,
    -- The region of a settlement referred to temporary assistance, while it
    -- is not reversed.
    referral_region text COLLATE "C",
    record          jsonb   NOT NULL,
    -- A claim key is used once, forever, by any instance.
    CONSTRAINT settlement_claim_key UNIQUE (hospital_id, claim_id)
);

CREATE INDEX settlement_patient_year ON settlement (patient_id, year, id);
CREATE INDEX settlement_settled_day ON settlement (settled_day, id);
CREATE INDEX settlement_reversed_day ON settlement (reversed_day, id)
    WHERE reversed_day IS NOT NULL;
CREATE INDEX settlement_hospital_settled_day ON settlement (hospital_id, settled_day, id);
CREATE INDEX settlement_hospital_reversed_day ON settlement (hospital_id, reversed_day, id)
    WHERE reversed_day IS NOT NULL;
CREATE INDEX settlement_referral ON settlement (settled_day, id)
    WHERE referral_region IS NOT NULL;

-- The running total of a patient's cap year. Its row is locked by every
-- transaction that charges or refunds it, so no two instances decide on
-- the same total.
CREATE TABLE usage (
    patient_id text COLLATE "C" NOT NULL,
    year       integer NOT NULL,
    record     jsonb   NOT NULL,
    PRIMARY KEY (patient_id, year)
);
