package query

import (
	"errors"
	"net/http"
	"testing"
)

// FuzzDecodeQueries: any backupQuery/recordQuery text either decodes or is
// a 400 naming a field; it never panics.
func FuzzDecodeQueries(f *testing.F) {
	for _, s := range []string{
		`{"subject":"a","len":20}`,
		`{"subject":"a","len":20,"msgCreateTimeBegin":1700000000000,"msgCreateTimeEnd":"2026-12-07T15:00:00Z"}`,
		`{"subject":"a","messageId":"m","recordCode":1}`,
		`{"len":"x"}`, `[]`, `null`, `{"a":1}`, `{"subject":"a"} {}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var bq BackupQuery
		check := func(err error) {
			if err == nil {
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest || ae.field == "" || ae.msg == "" {
				t.Fatalf("%q: error %v is not a 400 naming a field", s, err)
			}
		}
		check(decode("backupQuery", []byte(s), &bq))
		var rq RecordQuery
		check(decode("recordQuery", []byte(s), &rq))
	})
}
