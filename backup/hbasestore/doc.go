// Package hbasestore is the backup's HBase store (store.type=hbase): QMQ's
// backup tables in HBase, written and read through HBase's REST gateway
// ("hbase rest start", historically Stargate) with net/http, because the
// native Go client is not available to this project.
//
// The REST calls used, as HBase's reference guide ("Apache HBase External
// APIs", REST: Table Information, Puts, Gets, Scans) documents them:
//
//	PUT    /<table>/schema              create a table (201; 200 if it exists)
//	GET    /<table>/schema              does it exist (200, 404)
//	PUT    /<table>/fakerow             put rows: a CellSet, keys, columns
//	                                    and values base64 ("Put Multiple Values")
//	GET    /<table>/<row>/<fam>:<qual>  one cell (200 CellSet, 404)
//	PUT    /<table>/scanner             create a scanner: startRow, endRow
//	                                    (exclusive), batch, column, filter
//	                                    (201 and its URI in Location)
//	GET    <scanner URI>                next batch (200 CellSet; 204 when exhausted)
//	DELETE <scanner URI>                release it (200) — always, also after an error
//
// JSON throughout (Content-Type and Accept application/json). A scan's
// filter is QMQ's: a RowFilter with a RegexStringComparator over the row
// key, whose value is the regexp itself, not base64 (ScannerModel's JSON).
//
// Errors: a refused connection, a timeout or a 5xx answer wrap
// backup.ErrUnavailable, so the follower retries; a 4xx is a bug of ours
// or a missing table and says which.
//
// Not run against a live HBase here: it is tested with backup/storetest
// against backup/hbasetest, a server implementing the same REST subset.
package hbasestore
