-- Incremental linkage: a run reads back only the earlier persons its records can reach
-- (niji-privacy `reach`), found through these tables instead of by unsealing every linkable
-- record of the instance.
--
-- `link_buckets`: per person (its current key), every keyed bucket (8 bytes of an HMAC of a
-- birth date, a sex and the last character of a name) of its records: each block it is in
-- crossed with each name ending it has. Rewritten for the persons a run touches. Whoever holds
-- this file without the vault key sees which persons share a bucket (a birth date, a sex and a
-- name ending, none of which it can read), as `anchors` already shows which share a number.
CREATE TABLE link_buckets (
    bucket BLOB NOT NULL CHECK (length(bucket) = 8),
    person_key BLOB NOT NULL CHECK (length(person_key) = 32),
    PRIMARY KEY (bucket, person_key)
) WITHOUT ROWID;

-- Records keep the key they were stored under; when a later run joins two earlier persons, the
-- records stored under `stored_key` belong to the person now keyed `person_key`. One stored
-- key can belong to several persons (namesakes kept apart both get the key of their name, and a
-- later run may join each to someone else): all of them are listed.
CREATE TABLE link_clusters (
    stored_key BLOB NOT NULL CHECK (length(stored_key) = 32),
    person_key BLOB NOT NULL CHECK (length(person_key) = 32),
    PRIMARY KEY (stored_key, person_key)
) WITHOUT ROWID;
CREATE INDEX link_clusters_person ON link_clusters (person_key);

-- Whether the two tables above cover every linkable record, and the format of linkage they
-- were made with (niji-privacy's `LINK_INDEX_FORMAT`: buckets and anchors come from normalized
-- names, dates and numbers, so a release that normalizes otherwise makes them stale). A vault
-- that already holds linkable records starts incomplete, and an index of another format counts
-- as incomplete: the next linkage run reads back every record (as before this migration) and
-- fills the tables for all of them.
CREATE TABLE link_index (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    complete INTEGER NOT NULL,
    format INTEGER
);
INSERT INTO link_index (id, complete, format) SELECT 1, NOT EXISTS (SELECT 1 FROM identity_records WHERE linkable), NULL;
