-- Issue 5: jobs (named SQL outputs run on the real data, then output checking), the output
-- checkers' sign-offs and the releases they allow.

-- A job of a permit. Statuses: 'checking' (running) | 'awaiting_review' (every output passed the
-- automatic checks) | 'released' | 'refused' (an output was refused, or a checker rejected it) |
-- 'failed' (an internal error while running).
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    permit_id     INTEGER NOT NULL REFERENCES permits(id),
    submitted_by  INTEGER NOT NULL REFERENCES users(id),
    status        TEXT NOT NULL,
    -- hex SHA-256 of the job's code (every output's name and SQL), never its text
    code_sha256   TEXT NOT NULL,
    -- A fixed code when refused or failed (a sandbox refusal, 'differencing', a checker's code).
    reason        TEXT,
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    -- The run on the real data (its receipt); NULL when nothing ran.
    run_id        INTEGER REFERENCES analysis_runs(id),
    log_index     BIGINT
);
CREATE INDEX jobs_permit ON jobs(permit_id);

-- One named output of a job. Raw results are never stored: only the checked table.
CREATE TABLE job_outputs (
    job_id            INTEGER NOT NULL REFERENCES jobs(id),
    position          INTEGER NOT NULL,
    name              TEXT NOT NULL,
    -- hex SHA-256 of the output's SQL text
    sql_sha256        TEXT NOT NULL,
    -- hex SHA-256 of the normalised SQL: the cohort key differencing compares
    cohort_key        TEXT NOT NULL,
    -- 'passed' | 'refused' | 'not_run'
    status            TEXT NOT NULL,
    -- A fixed code when refused.
    refusal           TEXT,
    -- JSON {"dimensions", "measures", "rows": [{"keys", "values"}]}: released values, suppressed
    -- cells marked; NULL when the output did not run.
    checked_table     TEXT,
    -- JSON per-cell verdicts with reason codes and texts.
    verdicts          TEXT,
    -- JSON: the earlier releases compared and the one that refused the output, if any.
    differencing      TEXT,
    -- JSON [{"keys", "persons"}] of the released rows, for differencing of later outputs only;
    -- never shown.
    published_persons TEXT,
    PRIMARY KEY (job_id, name)
);

-- An output checker's verdict on a job; each checker signs a job once.
CREATE TABLE release_signoffs (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs(id),
    checker_id  INTEGER NOT NULL REFERENCES users(id),
    -- 'approve' | 'reject'
    verdict     TEXT NOT NULL CHECK (verdict IN ('approve', 'reject')),
    -- A fixed code (lower-case letters, digits and '_'), never free text.
    reason      TEXT NOT NULL,
    signed_at   BIGINT NOT NULL,
    log_index   BIGINT,
    UNIQUE (job_id, checker_id)
);

-- A released job: a CSV file and its metadata JSON under releases/<id>/, whose hashes are in the
-- transparency log (`release.published`). The hashes are NULL until the files are written.
CREATE TABLE releases (
    id               INTEGER PRIMARY KEY,
    job_id           INTEGER NOT NULL UNIQUE REFERENCES jobs(id),
    permit_id        INTEGER NOT NULL REFERENCES permits(id),
    file_name        TEXT NOT NULL,
    csv_sha256       TEXT,
    metadata_sha256  TEXT,
    log_index        BIGINT,
    released_at      BIGINT NOT NULL
);
CREATE INDEX releases_permit ON releases(permit_id);
