-- A TOTP secret being enrolled is kept apart from the active one, so that starting an
-- enrolment never weakens an account: the active secret stays until a code from the new
-- one confirms it.
ALTER TABLE users ADD COLUMN totp_pending_secret BLOB;
