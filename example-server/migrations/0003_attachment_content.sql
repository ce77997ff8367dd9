-- Attachment bytes in the database (encrypted with the tenant's data key, the
-- ciphertext's text form), so every instance serves every attachment and a
-- tenant's erasure deletes them with its rows. NULL for attachments stored
-- before this migration under <data-dir>/files/<tenant>/<id> (still read there).
ALTER TABLE attachments ADD COLUMN content TEXT;
