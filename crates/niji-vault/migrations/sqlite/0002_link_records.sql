-- Records that took part in linkage (a FHIR Patient, a UKE claim, a registry row): later
-- intakes re-read them (`Vault::link_records`) to link new data against everything already
-- known. Neither column is identifying: a flag, and the claim month a record's insurance
-- numbers were valid. Both are bound into the sealed blob's associated data when set, so
-- flipping the flag or altering the date makes the row fail authentication.

-- Whether the record is re-read for linkage (rows from before this migration: no).
ALTER TABLE identity_records ADD COLUMN linkable BOOLEAN NOT NULL DEFAULT FALSE;
-- ISO date (`YYYY-MM-DD`, or `YYYY-MM` / `YYYY` at a lower precision) or NULL; set only on
-- linkable records.
ALTER TABLE identity_records ADD COLUMN observed TEXT;

-- `link_records` reads the linkable records of some datasets in stored order.
CREATE INDEX identity_records_linkable ON identity_records (dataset, id) WHERE linkable;
-- `persons_in` / `persons_shared` count distinct person keys per dataset from the index alone.
CREATE INDEX identity_records_dataset_person ON identity_records (dataset, person_key);
