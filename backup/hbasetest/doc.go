// Package hbasetest is an in-process HTTP server that implements the subset
// of HBase's REST gateway that backup/hbasestore uses — table schema
// create/get, CellSet puts and gets, scanners with startRow/endRow/batch,
// a column and a RowFilter/RegexStringComparator or PrefixFilter, and the
// scanner lifecycle (201 + Location, 200 batches, 204 when exhausted, 404
// for an unknown scanner, DELETE) — with base64 keys, columns and values,
// and rows sorted by key in memory. It is strict the way HBase is: a
// missing table is 404, a family the table lacks or a malformed body 400,
// a body that is not JSON 415.
//
// For tests of failures it can be made to answer every request with a
// status (Fail(503)), to answer slowly (Delay) and to refuse connections
// (Down, then Up on the same address). For tests only: it holds everything
// in memory.
package hbasetest
