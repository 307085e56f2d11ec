ALTER TABLE credentials DROP COLUMN verify_state;
