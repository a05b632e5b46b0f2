-- The backup's dictionary qmq_dic (MySQL 5.7+/8.x, MariaDB 10.3+), in the
-- metaserver's database: names (subjects, "%RETRY%<subject>", broker and
-- consumer groups) to the 6-digit ids in the backup's row keys.
--
-- QMQ's init_backup.sql creates (id, name), but QMQ's DbDicDao reads and
-- writes columns name_id and name ("SELECT name_id FROM qmq_dic WHERE
-- name=?", "INSERT INTO qmq_dic(name_id,name) VALUES(?,?)"), so QMQ's
-- backup fails on its own schema. This table has what the DAO queries, and
-- keeps id as an auto-increment key so the file is a superset of QMQ's:
-- QMQ's Java backup and ours work on it unchanged. On a table created from
-- QMQ's file, add the column:
--   ALTER TABLE qmq_dic ADD COLUMN name_id INT UNSIGNED NOT NULL, ADD UNIQUE KEY uniq_idx_name_id (name_id);
-- (on an empty table; a filled one cannot have been written by QMQ's DAO).
-- name is 112 wide, not QMQ's 100: row keys use the ids of
-- "%DEAD_RETRY%<subject>" and "%RETRY%<subject>", 12 and 7 bytes more than
-- a subject of up to 100. The backup refuses a narrower column (MySQL's
-- non-strict mode would truncate such names); widen one made from QMQ's file:
--   ALTER TABLE qmq_dic MODIFY name VARCHAR(112) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS `qmq_dic`
(
    `id`      INT(11) UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'row key',
    `name_id` INT(11) UNSIGNED NOT NULL COMMENT '6-digit id in row keys (0..999998)',
    `name`    VARCHAR(112) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'subject or group name, or %RETRY%/%DEAD_RETRY% + subject (case-sensitive, as subjects are)',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_idx_name_id` (`name_id`),
    UNIQUE KEY `uniq_idx_name` (`name`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COMMENT 'qmq backup dictionary';
