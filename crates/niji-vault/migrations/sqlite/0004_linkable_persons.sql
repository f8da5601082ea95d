-- Persons per dataset are counted over linkable records only: every person of a version has
-- one (each linkage unit's first record is linkable, and every other record of a version
-- belongs to a unit's person). Indexing only those rows spares a random-key index insert for
-- every other record (a UKE claim's repeated months, resources that name a Patient): the
-- intake's write phase is bounded by how many random index pages each row touches.
DROP INDEX identity_records_dataset_person;
CREATE INDEX identity_records_dataset_person ON identity_records (dataset, person_key) WHERE linkable;
