-- Where a user's notifications are mailed (the outbox's address); NULL: portal only.
ALTER TABLE users ADD COLUMN email TEXT;
