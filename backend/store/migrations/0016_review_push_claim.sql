-- When a push of a review batch to Label Studio claimed it: set before the project is made (so a
-- second push, or two at once, sees the claim), kept once the project is recorded, cleared when
-- the push fails. A claim with no project that is older than a push can take was left by a
-- push that died, and may be taken over.
ALTER TABLE review_batches ADD COLUMN ls_claimed TIMESTAMP;
