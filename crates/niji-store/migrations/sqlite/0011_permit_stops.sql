-- Issue 5: runs on real data that a limit stopped. Whether a query runs out of time or memory (or
-- fails while running) can depend on the rows it reaches, so every stop may tell one bit about
-- them that output checking never sees. A permit therefore gets a few stops; then nothing more
-- runs on its real data until an output checker clears them.
--
-- A row is written *before* a run starts (reason 'running'), in the statement that checks the
-- budget, so that concurrent runs cannot pass it together; it is deleted when the run ends
-- without a stop. A run that never ends (the process was killed, perhaps for memory) keeps its
-- row and counts as a stop.
CREATE TABLE permit_stops (
    id          INTEGER PRIMARY KEY,
    permit_id   INTEGER NOT NULL REFERENCES permits(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    -- 'query' | 'job'
    kind        TEXT NOT NULL,
    -- hex SHA-256 of the SQL run (never its text)
    code_sha256 TEXT NOT NULL,
    -- 'running' | 'timeout' | 'memory_limit' | 'execution' | 'internal'
    reason      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    -- set when an output checker clears the permit's stops
    cleared_by  INTEGER REFERENCES users(id),
    cleared_at  BIGINT,
    -- the last analysis run (analysis_runs.id) before the clearance: the runs a checker is shown
    -- are those after it
    runs_through BIGINT
);
CREATE INDEX permit_stops_permit ON permit_stops(permit_id, cleared_at);
