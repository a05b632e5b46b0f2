// Package query is the backup's query API over a backup.Store, on QMQ's
// paths with QMQ's parameters and JSON field names, so QMQ's console and
// scripts work against it:
//
//	GET /api/message?backupQuery={subject, messageId?, msgCreateTimeBegin?, msgCreateTimeEnd?, isDelay, len, start?}
//	    → {"list":[{subject, messageId, sequence, createTime, brokerGroup}], "next": "…" | null}
//	GET /api/message/dead?backupQuery={… and consumerGroup?}
//	    → the same, each with its consumerGroup
//	GET /api/message/detail?backupQuery={subject, brokerGroup, sequence, consumerGroup?}
//	    → the message: id, subject, tags, attrs (body and properties), times;
//	      consumerGroup names that group's dead letter, and the stored subjects
//	      %RETRY%<subject>%<group> (a retry copy) and %DEAD_RETRY%<subject>%<group> are taken
//	GET /api/message/records?recordQuery={subject, messageId, brokerGroup, sequence, recordCode}
//	    → {"records":[{consumerGroup, action, type, timestamp, consumerId, sequence, brokerGroup}]}
//	GET /api/message/retry?backupQuery={subject, messageId, consumerGroup?, …} (ours)
//	    → the message's retry copies, as /api/message lists, each with its consumerGroup
//	      and its sequence in %RETRY%<subject>%<consumerGroup>: what names its detail
//
// Times are milliseconds since the epoch (QMQ's Dates), or RFC 3339 or
// "2006-01-02 15:04:05" strings on input. A page's "next" goes back as the
// next query's "start".
//
// Unlike QMQ, which answers 200 with an empty list to anything it cannot
// use, a bad query is a 4xx with a JSON body {"error": …, "field": …}
// naming the field: malformed JSON, an unknown field, a missing subject, a
// len over 1000, a time range the wrong way round, a start that is not a
// next (400); a subject or group nothing was backed up for, a message the
// store has no content for and no DetailSource can fetch (404). The store
// being unreachable is 503, and a query over its time budget 504.
package query
