-- File tags (issue 16). The tags themselves travel inside the file's encrypted meta; only keyed
-- hashes of them are stored in the clear, so a tag filter (one user's files, or a tenant-wide
-- bulk listing) is an index look-up without the tag text ever reaching the database.
ALTER TABLE files ADD COLUMN tag_hashes text[] NOT NULL DEFAULT '{}';
CREATE INDEX files_tags ON files USING gin (tag_hashes);
