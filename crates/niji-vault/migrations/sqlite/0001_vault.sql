-- The identity vault. Nothing identifying is stored in the clear: columns hold keyed hashes
-- (HMAC-SHA256 under the vault key), person keys, sealed blobs (XChaCha20-Poly1305 under the
-- sealing key), holder and dataset ids, and counts.

-- One row: checks that the keys a caller opens the vault with are the keys it was created with.
CREATE TABLE vault_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- keyed hash of a fixed label under the vault key
    vault_key_check BLOB NOT NULL,
    -- a fixed label sealed under the sealing key (nonce || ciphertext || tag)
    sealing_check BLOB NOT NULL
);

-- Anchor (keyed hash of a member id, patient number or 受給者番号, as niji-privacy's
-- `Linkage::anchors`) -> person key, per dataset that brought it (so deleting a dataset takes
-- its anchors along).
CREATE TABLE anchors (
    anchor BLOB NOT NULL CHECK (length(anchor) = 32),
    dataset TEXT NOT NULL,
    person_key BLOB NOT NULL CHECK (length(person_key) = 32),
    PRIMARY KEY (anchor, dataset)
);
CREATE INDEX anchors_dataset ON anchors (dataset);

-- One identity record per ingested record.
CREATE TABLE identity_records (
    id INTEGER PRIMARY KEY,
    person_key BLOB NOT NULL CHECK (length(person_key) = 32),
    holder TEXT NOT NULL,
    dataset TEXT NOT NULL,
    -- keyed hash of (dataset, record reference): the reference itself is only inside `sealed`
    record_hash BLOB NOT NULL CHECK (length(record_hash) = 32),
    -- nonce (24 bytes) || ciphertext || tag
    sealed BLOB NOT NULL,
    UNIQUE (dataset, record_hash)
);
CREATE INDEX identity_records_person ON identity_records (person_key);
