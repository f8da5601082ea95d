-- Identity records are written in arrival order (their rowid) with indexes that only grow at
-- their end; the two lookups by random keys move to tables of their own, filled at the end of
-- each batch in key order (`VaultBatch::commit`). A random-key index took a random page for
-- every inserted row: once the indexes outgrew the page cache, a submission of 2.7 million UKE
-- claims spent 138 of its 179 seconds there; sorted, each page is written once.
--
-- On an existing vault it rewrites every record in the migration's one transaction, at the
-- first open after an upgrade: expect a WAL about the size of the vault, and other processes
-- opening it to wait (busy timeout) until it is done. Run the upgrade with the server stopped.
--
-- `record_refs` keeps a record reference (its keyed hash) once per dataset, as the UNIQUE
-- constraint of `identity_records` did; `person_records` finds a person's records.
CREATE TABLE identity_records_sorted (
    id INTEGER PRIMARY KEY,
    person_key BLOB NOT NULL CHECK (length(person_key) = 32),
    holder TEXT NOT NULL,
    dataset TEXT NOT NULL,
    record_hash BLOB NOT NULL CHECK (length(record_hash) = 32),
    sealed BLOB NOT NULL,
    linkable BOOLEAN NOT NULL DEFAULT FALSE,
    observed TEXT
);
INSERT INTO identity_records_sorted (id, person_key, holder, dataset, record_hash, sealed, linkable, observed)
    SELECT id, person_key, holder, dataset, record_hash, sealed, linkable, observed FROM identity_records ORDER BY id;
DROP TABLE identity_records;
ALTER TABLE identity_records_sorted RENAME TO identity_records;
CREATE INDEX identity_records_dataset ON identity_records (dataset, id);
CREATE INDEX identity_records_linkable ON identity_records (dataset, id) WHERE linkable;
CREATE INDEX identity_records_dataset_person ON identity_records (dataset, person_key) WHERE linkable;

CREATE TABLE record_refs (
    dataset TEXT NOT NULL,
    record_hash BLOB NOT NULL CHECK (length(record_hash) = 32),
    PRIMARY KEY (dataset, record_hash)
) WITHOUT ROWID;
INSERT INTO record_refs (dataset, record_hash) SELECT dataset, record_hash FROM identity_records ORDER BY dataset, record_hash;

CREATE TABLE person_records (
    person_key BLOB NOT NULL CHECK (length(person_key) = 32),
    id INTEGER NOT NULL,
    PRIMARY KEY (person_key, id)
) WITHOUT ROWID;
INSERT INTO person_records (person_key, id) SELECT person_key, id FROM identity_records ORDER BY person_key, id;
