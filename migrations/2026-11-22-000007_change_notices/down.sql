DROP TRIGGER restores_notify_change ON restores;
DROP TRIGGER backup_policies_notify_change ON backup_policies;
DROP TRIGGER backups_notify_change ON backups;
DROP TRIGGER projects_notify_change ON projects;
DROP TRIGGER organizations_notify_change ON organizations;
DROP TRIGGER credentials_notify_change ON credentials;
DROP FUNCTION keyhold_notify_change();
