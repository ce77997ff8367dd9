-- PostgreSQL dialect of 0003_attachment_content.sql (the same column; a
-- tenant table, so the row-level security policies already cover it).
ALTER TABLE attachments ADD COLUMN content TEXT;
