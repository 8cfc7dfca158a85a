-- The peer baseline: the settlement transaction a team would otherwise build
-- on PostgreSQL. One row per patient-year holds the running total and the
-- cap; one row per settlement is the ledger.
DROP TABLE IF EXISTS settlement;
DROP TABLE IF EXISTS patient_year;
DROP SEQUENCE IF EXISTS claim_number;

CREATE TABLE patient_year (
    patient_id       text          NOT NULL,
    year             integer       NOT NULL,
    annual_cap       numeric(16,2) NOT NULL,
    used             numeric(16,2) NOT NULL DEFAULT 0,
    settlement_count integer       NOT NULL DEFAULT 0,
    PRIMARY KEY (patient_id, year),
    CHECK (used <= annual_cap)
);

CREATE SEQUENCE claim_number;

CREATE TABLE settlement (
    settlement_id bigserial     PRIMARY KEY,
    hospital_id   text          NOT NULL,
    claim_id      text          NOT NULL,
    patient_id    text          NOT NULL,
    year          integer       NOT NULL,
    assistance    numeric(16,2) NOT NULL,
    capped        boolean       NOT NULL,
    settled_at    timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (hospital_id, claim_id)
);

-- :patients patient-years with the 150,000.00 cap of the built-in policy.
INSERT INTO patient_year (patient_id, year, annual_cap)
SELECT 'P' || n, 2026, 150000.00 FROM generate_series(1, :patients) AS n;
ANALYZE;
