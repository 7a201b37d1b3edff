-- The Label Studio account e-mail of a studio user (optional), so verdicts and judgements pulled
-- from Label Studio are recorded under the studio username. Unique when set, ignoring case; the
-- store writes it lower-case and names the other user on a clash, the index is the backstop.
ALTER TABLE users ADD COLUMN email VARCHAR;
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));
