-- One durable settlement, as medassist's Settle does it: lock the patient's
-- running total, compute the payment against what is left of the cap (0.70
-- of a 300.00 out-of-pocket is 210.00), update the total, insert the ledger
-- row, commit. synchronous_commit stays on, so COMMIT waits for the WAL flush.
\set p random(1, :patients)
BEGIN;
SELECT annual_cap, used FROM patient_year WHERE patient_id = 'P' || :p AND year = 2026 FOR UPDATE \gset
UPDATE patient_year
   SET used = used + LEAST(210.00, annual_cap - used),
       settlement_count = settlement_count + 1
 WHERE patient_id = 'P' || :p AND year = 2026
RETURNING LEAST(210.00, :annual_cap - :used) AS assistance \gset
INSERT INTO settlement (hospital_id, claim_id, patient_id, year, assistance, capped)
VALUES ('BENCH', 'C' || nextval('claim_number'), 'P' || :p, 2026, :assistance, :assistance < 210.00);
COMMIT;
