# hbase shell script: the backup's HBase tables, as QMQ's
# init_backup_hbase.sql, plus qmq_backup_detail (ours: a message's content
# and index by broker group and sequence, for /api/message/detail).
# Run: hbase shell -n schema/init_backup_hbase.sql
# Or, through the REST gateway: qmq query create-hbase-tables --rest http://host:8080
# Retention: add TTL => <seconds> to each family (qmq query create-hbase-tables
# sets backup.retention.days for you).
create 'qmq_backup', 'm'
create 'qmq_backup_record', 'i'
create 'qmq_backup_dead', 'm'
create 'qmq_backup_dead_content', 'm'
create 'qmq_backup_detail', 'm'
