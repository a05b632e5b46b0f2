package hbasetest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func do(t *testing.T, method, url, contentType, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func enc(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestRESTSubset(t *testing.T) {
	s := Start(t)
	u := s.URL()
	const js = "application/json"
	if r, _ := do(t, "GET", u+"/t/schema", "", ""); r.StatusCode != 404 {
		t.Fatalf("schema of a missing table: %d", r.StatusCode)
	}
	if r, _ := do(t, "PUT", u+"/t/schema", js, `{"name":"t","ColumnSchema":[{"name":"m","TTL":"60"}]}`); r.StatusCode != 201 {
		t.Fatalf("create: %d", r.StatusCode)
	}
	if r, _ := do(t, "PUT", u+"/t/schema", js, `{"name":"t","ColumnSchema":[{"name":"m"}]}`); r.StatusCode != 200 {
		t.Fatalf("create again: %d", r.StatusCode)
	}
	put := func(rows ...string) string {
		var b strings.Builder
		b.WriteString(`{"Row":[`)
		for i, k := range rows {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"key":"` + enc(k) + `","Cell":[{"column":"` + enc("m:c") + `","$":"` + enc("v"+k) + `"}]}`)
		}
		b.WriteString("]}")
		return b.String()
	}
	for body, want := range map[string]int{
		put("a", "b", "c", "d", "e"): 200,
		`{"Row":[{"key":"%%%","Cell":[{"column":"` + enc("m:c") + `","$":""}]}]}`:              400,
		`{"Row":[{"key":"` + enc("a") + `","Cell":[{"column":"` + enc("x:c") + `","$":""}]}]}`: 400,
		`not json`: 400,
	} {
		if r, msg := do(t, "PUT", u+"/t/fakerow", js, body); r.StatusCode != want {
			t.Errorf("put %.60s: %d %s, want %d", body, r.StatusCode, msg, want)
		}
	}
	if r, _ := do(t, "PUT", u+"/t/fakerow", "text/plain", put("z")); r.StatusCode != 415 {
		t.Errorf("put as text/plain: %d", r.StatusCode)
	}
	if r, _ := do(t, "PUT", u+"/nope/fakerow", js, put("z")); r.StatusCode != 404 {
		t.Errorf("put into a missing table: %d", r.StatusCode)
	}
	if r, body := do(t, "GET", u+"/t/b/m:c", "", ""); r.StatusCode != 200 || !strings.Contains(body, enc("vb")) {
		t.Errorf("get: %d %s", r.StatusCode, body)
	}
	if r, _ := do(t, "GET", u+"/t/zz/m:c", "", ""); r.StatusCode != 404 {
		t.Errorf("get a missing row: %d", r.StatusCode)
	}

	// Scanner: 201 + Location, 200 batches, 204, DELETE, then 404.
	filter, _ := json.Marshal(`{"type":"RowFilter","op":"EQUAL","comparator":{"type":"RegexStringComparator","value":"^[a-c]"}}`)
	r, _ := do(t, "PUT", u+"/t/scanner", js, `{"startRow":"`+enc("b")+`","endRow":"`+enc("e")+`","batch":1,"filter":`+string(filter)+`}`)
	loc := r.Header.Get("Location")
	if r.StatusCode != 201 || loc == "" || s.OpenScanners() != 1 {
		t.Fatalf("create scanner: %d %q", r.StatusCode, loc)
	}
	var keys []string
	for {
		r, body := do(t, "GET", loc, "", "")
		if r.StatusCode == 204 {
			break
		}
		var cs outCellSet
		if r.StatusCode != 200 || json.Unmarshal([]byte(body), &cs) != nil || len(cs.Row) != 1 {
			t.Fatalf("scanner next: %d %s", r.StatusCode, body)
		}
		k, _ := base64.StdEncoding.DecodeString(cs.Row[0].Key)
		keys = append(keys, string(k))
	}
	if strings.Join(keys, ",") != "b,c" {
		t.Fatalf("scanned %v, want b,c (d is filtered out, e is the end)", keys)
	}
	if r, _ := do(t, "DELETE", loc, "", ""); r.StatusCode != 200 || s.OpenScanners() != 0 {
		t.Fatalf("delete scanner: %d", r.StatusCode)
	}
	if r, _ := do(t, "GET", loc, "", ""); r.StatusCode != 404 {
		t.Fatalf("a deleted scanner: %d", r.StatusCode)
	}
	if r, _ := do(t, "PUT", u+"/t/scanner", js, `{"batch":1,"filter":"{\"type\":\"ValueFilter\"}"}`); r.StatusCode != 400 {
		t.Fatalf("an unsupported filter: %d", r.StatusCode)
	}
}
