-- A policy's drill schedule (SPEC §8): off, after each completed backup, daily, weekly.
ALTER TABLE backup_policies ADD COLUMN drill text NOT NULL DEFAULT 'off'
    CONSTRAINT backup_policies_drill CHECK (drill IN ('off', 'each', 'daily', 'weekly'));
