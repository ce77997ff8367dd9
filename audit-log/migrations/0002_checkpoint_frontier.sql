-- Each checkpoint row may keep the right edge of the Merkle tree its note's
-- root is over (the roots of the tree's perfect subtrees, largest first, 32
-- bytes each: one per set bit of the size), so the next checkpoint's root is
-- the edge extended with the records since, not a pass over every record.
-- Any role that may INSERT here can write one: it is used only when it
-- hashes to the root of a note signed by the signing key, so a forged edge
-- is skipped, never signed over.
ALTER TABLE hisn_audit_checkpoint ADD COLUMN IF NOT EXISTS frontier bytea
    CHECK (length(frontier) % 32 = 0);
