-- Signed-in browser sessions, kept server-side so a sign-out or a disabled account ends them
-- at once (the cookie only carries a signed session id). Failed sign-ins are counted per user
-- for the back-off and the lockout.
CREATE TABLE sessions (
    id VARCHAR PRIMARY KEY,
    username VARCHAR NOT NULL,
    created TIMESTAMP NOT NULL DEFAULT current_timestamp,
    expires TIMESTAMP NOT NULL,
    revoked TIMESTAMP
);
CREATE TABLE handoffs (
    code VARCHAR PRIMARY KEY,
    session_id VARCHAR NOT NULL,
    expires TIMESTAMP NOT NULL
);
ALTER TABLE users ADD COLUMN failed_sign_ins INTEGER DEFAULT 0;
ALTER TABLE users ADD COLUMN last_failed_sign_in TIMESTAMP;
ALTER TABLE users ADD COLUMN locked_until TIMESTAMP;
