-- Version 3: the 2021 framework's policy by class (issue 21).
--
-- No table changes: the JSON records gain fields (a settlement's claim
-- kind and breakdown, a running total's deductible consumed, band
-- position, outpatient charge, tilted assistance and remaining cost), and
-- rows written before read them as absent (zero). The version is raised so
-- that an older binary, which would rewrite a running total without those
-- fields and lose what its settlements consumed, refuses this database.
COMMENT ON TABLE usage IS
    'running total of a patient''s cap year; record holds what its settlements consumed (schema 3)';
