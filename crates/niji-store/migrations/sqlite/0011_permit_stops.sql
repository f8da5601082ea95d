-- Issue 5: every run of a permit on real data, and the ones that were stopped. Whether a query
-- runs out of time or memory, fails while running, or is refused by differencing can depend on
-- the rows it reaches, so which runs stopped may tell about them what output checking never sees.
-- A permit therefore gets a few stops; then nothing more runs on its real data until an output
-- checker clears them.
--
-- A row is written *before* a run starts (reason 'running'), in the statement that checks the
-- budget, so that concurrent runs cannot pass it together; it ends as 'ok' (no stop) or with
-- what stopped it. A run that never ends (the process was killed, perhaps for memory) keeps its
-- place.
CREATE TABLE permit_stops (
    id          INTEGER PRIMARY KEY,
    permit_id   INTEGER NOT NULL REFERENCES permits(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    -- 'query' | 'job'
    kind        TEXT NOT NULL,
    -- hex SHA-256 of the SQL run (never its text)
    code_sha256 TEXT NOT NULL,
    -- 'running' | 'ok' | the code of what stopped it ('timeout', 'memory_limit', 'differencing', …)
    reason      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    -- set when an output checker clears the stop
    cleared_by  INTEGER REFERENCES users(id),
    cleared_at  BIGINT
);
CREATE INDEX permit_stops_permit ON permit_stops(permit_id, cleared_at);

-- Each clearance: up to which run the checker was shown (the runs a later checker is told
-- about are those after it), and why.
CREATE TABLE stop_clearances (
    id          INTEGER PRIMARY KEY,
    permit_id   INTEGER NOT NULL REFERENCES permits(id),
    checker_id  INTEGER NOT NULL REFERENCES users(id),
    through     BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    cleared     BIGINT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX stop_clearances_permit ON stop_clearances(permit_id);
