-- The consent registry (0003) moves to a file of its own beside the vault (`registry.sqlite`,
-- migrations in `migrations/registry/`): an intake's batch holds this file's write lock until it
-- commits, minutes for a large submission, and a citizen's opt-out written meanwhile failed after
-- the busy timeout. `registry_id` names the registry file this vault goes with (16 random bytes,
-- also in the registry file's `registry_meta`); it is set, and the tables of 0003 dropped, in the
-- transaction that moves their rows (`Vault::open`). NULL: not moved yet.
--
-- A release older than this migration refuses the vault (an applied migration it does not know),
-- so it never writes registry rows to tables that are no longer read.
ALTER TABLE vault_meta ADD COLUMN registry_id BLOB CHECK (registry_id IS NULL OR length(registry_id) = 16);
