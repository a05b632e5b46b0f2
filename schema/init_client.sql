-- QMQ transactional-message table for MySQL 5.7+/8.x and MariaDB 10.3+:
-- the table an application's own database holds so that a message is
-- written in the same transaction as the business change that causes it
-- (package client/tx; QMQ's qmq-dist/sql/init_client.sql).
--
-- Database, table and column names and column types are identical to
-- QMQ's, so a table created by QMQ works with the Go client and with QMQ's
-- Java client and watchdog, and vice versa. Differences from QMQ's file,
-- none of which affect the data:
--   * comments are in English;
--   * both statements are idempotent (IF NOT EXISTS), and the table is
--     created in qmq_produce (QMQ's file lacks a USE, so its table landed
--     in whatever database the mysql client had selected);
--   * the collation is spelled out (utf8mb4_general_ci, MariaDB's default).
--
-- Columns: content is the message as JSON (Gson's form of QMQ's
-- BaseMessage); status is 0 while the row waits to be sent (the watchdog
-- resends only status 0), -100 when a broker refused the message (BLOCK),
-- -1/-2 when the watchdog gave up; error counts failed sends. A sent
-- message's row is deleted.
--
-- The business tables and qmq_produce must be on the same server, since
-- one transaction writes both. Where that is impossible, create the table
-- in the business database and give its name to the client
-- (client/tx.WithTable; QMQ's DefaultSqlStatementProvider(tableName)).
--
-- Every statement ends with ';' at the end of a line, so tools may split
-- on that. Apply with:
--   mysql -uroot < schema/init_client.sql

CREATE DATABASE IF NOT EXISTS `qmq_produce` DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `qmq_produce`.`qmq_msg_queue`
(
    `id`          BIGINT(20)   NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `content`     LONGTEXT     NOT NULL COMMENT 'the message, JSON',
    `status`      SMALLINT(6)  NOT NULL DEFAULT '0' COMMENT 'status: 0 to send, -100 refused by a broker, -1/-2 given up by the watchdog',
    `error`       INT UNSIGNED NOT NULL DEFAULT '0' COMMENT 'failed sends',
    `create_time` DATETIME     NOT NULL COMMENT 'creation time',
    `update_time` TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT 'last update time',
    PRIMARY KEY (`id`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'messages of business transactions, until sent';
