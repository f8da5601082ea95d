-- Issue 5: an interactive query's answer is a release to the researcher too. What later
-- differencing needs of it is kept: the normalised SQL's hash and, per released row, its keys and
-- the persons behind it (never shown).
CREATE TABLE query_outputs (
    id                INTEGER PRIMARY KEY,
    permit_id         INTEGER NOT NULL REFERENCES permits(id),
    -- hex SHA-256 of the normalised SQL: the cohort key differencing compares
    cohort_key        TEXT NOT NULL,
    -- number of dimensions of the answer
    dimensions        BIGINT NOT NULL,
    -- JSON [{"keys": [...], "persons": n}]
    published_persons TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX query_outputs_permit ON query_outputs(permit_id);
