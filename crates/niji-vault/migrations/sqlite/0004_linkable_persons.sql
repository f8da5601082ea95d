-- A dataset with linkable records is counted by those alone: every person of a version the
-- intake writes has one (each linkage unit's first record is linkable, and every other record
-- of a version belongs to a unit's person). Indexing only those rows spares a random-key index
-- insert for every other record (a UKE claim's repeated months, resources that name a
-- Patient): the intake's write phase is bounded by how many random index pages each row
-- touches. Datasets without linkable records (stored before migration 0002) are counted by all
-- their records, without this index.
DROP INDEX identity_records_dataset_person;
CREATE INDEX identity_records_dataset_person ON identity_records (dataset, person_key) WHERE linkable;
