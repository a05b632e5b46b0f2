-- QMQ metaserver schema for MySQL 5.7+/8.x and MariaDB 10.3+.
--
-- Table names, column names, column types and unique keys are identical to
-- QMQ's qmq-dist/sql/init.sql plus 001_add_ext_to_broker_group.sql, so a
-- database created by QMQ works unchanged with this server and vice versa.
-- Differences from QMQ's file, none of which affect the data:
--   * comments are in English;
--   * create_time defaults to CURRENT_TIMESTAMP instead of a fixed date
--     ('1970-01-01 08:00:01' is invalid on servers east of UTC+8);
--   * broker_group.ext is part of CREATE TABLE instead of a later ALTER;
--   * the collation is spelled out (utf8mb4_general_ci, MariaDB's default).
-- The Go server always writes create_time/update_time itself, in UTC (its
-- sessions use time_zone '+00:00'); the ON UPDATE clauses are kept for other
-- writers such as QMQ's Java metaserver.
--
-- Every statement is idempotent (CREATE TABLE IF NOT EXISTS), and every
-- statement ends with ';' at the end of a line, so tools may split on that.
--
-- Apply with:
--   mysql -uroot -e 'create database qmq_metaserver'
--   mysql -uroot qmq_metaserver < schema/init.sql

-- Broker groups (a master and its slaves), written by the master's ONLINE,
-- heartbeat and OFFLINE requests and by the heartbeat timeout.
CREATE TABLE IF NOT EXISTS `broker_group`
(
    `id`             INT(11) UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `group_name`     VARCHAR(30)      NOT NULL DEFAULT '' COMMENT 'broker group name',
    `kind`           INT              NOT NULL DEFAULT '-1' COMMENT 'kind: 1 normal, 2 delay',
    `master_address` VARCHAR(25)      NOT NULL DEFAULT '' COMMENT 'master address, ip:port',
    `broker_state`   TINYINT          NOT NULL DEFAULT '-1' COMMENT 'master state: 1 RW, 2 R, 3 W, 4 NRW',
    `tag`            VARCHAR(30)      NOT NULL DEFAULT '' COMMENT 'routing tag of the group',
    `create_time`    TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'creation time',
    `update_time`    TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT 'last update time',
    `ext`            TEXT COMMENT 'extension data',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_group_name` (`group_name`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'broker groups';

-- Subjects registered with AddNewSubject (optional: no row means the default tag).
CREATE TABLE IF NOT EXISTS `subject_info`
(
    `id`          INT(11) UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `name`        VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'subject name',
    `tag`         VARCHAR(30)      NOT NULL DEFAULT '' COMMENT 'routing tag',
    `create_time` TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'creation time',
    `update_time` TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT 'last update time',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_name` (`name`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'subjects';

-- Subject routes: the broker groups serving a subject, as a JSON array of
-- group names; version is an optimistic lock (UPDATE ... WHERE version = ?).
CREATE TABLE IF NOT EXISTS `subject_route`
(
    `id`                INT(11) UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `subject_info`      VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'subject',
    `broker_group_json` VARCHAR(300)     NOT NULL DEFAULT '' COMMENT 'broker group names, JSON array',
    `version`           INT              NOT NULL DEFAULT 0 COMMENT 'version, incremented by every update',
    `create_time`       TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'creation time',
    `update_time`       TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT 'last update time',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_subject` (`subject_info`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'subject routes';

-- Subscription registry: one row per (subject, client type, consumer group, client id).
CREATE TABLE IF NOT EXISTS `client_meta_info`
(
    `id`             INT(11) UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `subject_info`   VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'subject',
    `client_type`    TINYINT          NOT NULL DEFAULT 0 COMMENT 'client type: 1 producer, 2 consumer, 3 other, 4 delay producer',
    `consumer_group` VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'consumer group',
    `client_id`      VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'client id',
    `app_code`       VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'application code',
    `room`           VARCHAR(20)      NOT NULL DEFAULT '' COMMENT 'room (data centre)',
    `create_time`    TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'creation time',
    `update_time`    TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT 'last update time',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_subject_client_type_consumer_group_client_id` (`subject_info`, `client_type`, `consumer_group`, `client_id`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'subscriptions';

-- Consumers forced online/offline by an operator.
CREATE TABLE IF NOT EXISTS `client_offline_state`
(
    `id`             INT(11) UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `client_id`      VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'client id',
    `subject_info`   VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'subject',
    `consumer_group` VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'consumer group',
    `state`          TINYINT          NOT NULL DEFAULT 0 COMMENT 'state: 0 online, 1 offline',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_client_id_subject_group` (`client_id`, `subject_info`, `consumer_group`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'consumers forced offline';

-- Static broker topology, written by AddBroker/ReplaceBroker.
-- ip holds the IPv4 address as an unsigned integer (as INET_ATON returns it).
CREATE TABLE IF NOT EXISTS `broker`
(
    `id`          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `group_name`  VARCHAR(30)     NOT NULL DEFAULT '' COMMENT 'broker group name',
    `hostname`    VARCHAR(50)     NOT NULL DEFAULT '' COMMENT 'host name',
    `ip`          INT UNSIGNED    NOT NULL DEFAULT '0' COMMENT 'IPv4 address as an integer',
    `role`        INT             NOT NULL DEFAULT '-1' COMMENT 'role: 0 master, 1 slave, 4 backup, 5 delay master, ...',
    `serve_port`  INT             NOT NULL DEFAULT '20881' COMMENT 'port serving clients',
    `sync_port`   INT             NOT NULL DEFAULT '20882' COMMENT 'port serving replication',
    `create_time` TIMESTAMP       NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'creation time',
    `update_time` TIMESTAMP       NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT 'last update time',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_broker` (`hostname`, `serve_port`),
    UNIQUE KEY `uniq_group_role` (`group_name`, `role`),
    KEY `idx_broker_group` (`group_name`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'brokers';

-- Leases for leader election (the watchdog); last_seen_active is epoch milliseconds.
CREATE TABLE IF NOT EXISTS `leader_election`
(
    `id`               INT(10) UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `name`             VARCHAR(128)     NOT NULL DEFAULT '' COMMENT 'election name',
    `node`             VARCHAR(128)     NOT NULL DEFAULT '' COMMENT 'node holding the lease',
    `last_seen_active` BIGINT(20)       NOT NULL DEFAULT 0 COMMENT 'last renewal, epoch milliseconds',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_idx_name` (`name`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'leader election';

-- Client databases (AddDb) whose message tables the watchdog scans.
CREATE TABLE IF NOT EXISTS `datasource_config`
(
    `id`          INT(10) UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `url`         VARCHAR(128)     NOT NULL DEFAULT '' COMMENT 'database url, <type>://host:port',
    `user_name`   VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'database user',
    `password`    VARCHAR(100)     NOT NULL DEFAULT '' COMMENT 'database password',
    `status`      TINYINT          NOT NULL DEFAULT 0 COMMENT 'status: 0 online, -1 offline',
    `room`        VARCHAR(20)      NOT NULL DEFAULT '' COMMENT 'room (data centre)',
    `create_time` TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'creation time',
    `update_time` TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT 'last update time',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_idx_name` (`url`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'client databases';

-- Broker groups marked read-only for producers (MarkReadonly); subject may be '*'.
CREATE TABLE IF NOT EXISTS `readonly_broker_group_setting`
(
    `id`           BIGINT(11) UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `subject`      VARCHAR(100)        NOT NULL DEFAULT '' COMMENT 'subject, or * for all subjects',
    `broker_group` VARCHAR(20)         NOT NULL DEFAULT '' COMMENT 'broker group marked read-only',
    `create_time`  TIMESTAMP           NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'creation time',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_subject_broker_group` (`subject`, `broker_group`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'read-only broker groups';

-- Ours (not in QMQ): the terms of each broker group's master, for failover
-- (qmq tools SwapMasterSlave and failover.enable). The latest row of a group
-- is its master lease, renewed by the master; message_offset and
-- action_offset are where the new master's logs ended when its term began,
-- so that a former master truncates what it never replicated. A database
-- without this table works as QMQ's; only failover needs it.
CREATE TABLE IF NOT EXISTS `broker_epoch`
(
    `id`               INT(11) UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'primary key',
    `group_name`       VARCHAR(30)      NOT NULL DEFAULT '' COMMENT 'broker group name',
    `epoch`            BIGINT(20)       NOT NULL DEFAULT 0 COMMENT 'term number, 1 for the first master',
    `holder`           VARCHAR(300)     NOT NULL DEFAULT '' COMMENT 'hostname:serve_port of the master',
    `address`          VARCHAR(64)      NOT NULL DEFAULT '' COMMENT 'ip:port the master registered for clients',
    `message_offset`   BIGINT(20)       NOT NULL DEFAULT 0 COMMENT 'message log end at the takeover',
    `action_offset`    BIGINT(20)       NOT NULL DEFAULT 0 COMMENT 'action log end at the takeover',
    `wait_slave_wrote` TINYINT          NOT NULL DEFAULT 0 COMMENT '1: the master acknowledges only what its slave wrote',
    `expire_ms`        BIGINT(20)       NOT NULL DEFAULT 0 COMMENT 'lease expiry, epoch milliseconds',
    `create_time`      TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'creation time',
    `update_time`      TIMESTAMP        NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT 'last update time',
    PRIMARY KEY (`id`),
    UNIQUE KEY `uniq_group_epoch` (`group_name`, `epoch`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_general_ci
  COMMENT = 'broker group master terms (ours)';
