package tx

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/client"
)

// javaRow is a content column as QMQ's Java client writes it, built by
// hand from its format (Gson with LongSerializationPolicy.STRING over
// BaseMessage): a message from generateMessage (createTime, expireTime,
// appCode as longs/strings), setDelayTime (scheduleReceiveTime, a long),
// setMaxRetryNum (an int: a JSON number), setProperty(String, int /
// boolean / double / String), two tags, HashMap attribute order and
// Gson's HTML-safe escaping (= ' < > & as \u003d \u0027 \u003c \u003e
// \u0026).
const javaRow = `{"messageId":"241207.133000.10.88.1.7.4242.17","subject":"order.paid","tags":["vip","cn"],"storeAtFailed":false,"durable":true,"attrs":{"amount":129.5,"qmq_scheduleReceiveTime":"1733578800000","qmq_maxRetryNum":5,"qmq_appCode":"orders","count":3,"qmq_createTime":"1733578200000","urgent":true,"query":"a\u003d1\u0026b\u003d\u0027x\u0027 \u003cok\u003e","note":"tab\there \"quoted\" ünïcode ✓","qmq_expireTime":"1733579100000","gone":null}}`

// javaProps is what javaRow's attributes are as QMQ properties.
var javaProps = map[string]string{
	"amount":                  "129.5",
	"qmq_scheduleReceiveTime": "1733578800000",
	"qmq_maxRetryNum":         "5",
	"qmq_appCode":             "orders",
	"count":                   "3",
	"qmq_createTime":          "1733578200000",
	"urgent":                  "true",
	"query":                   "a=1&b='x' <ok>",
	"note":                    "tab\there \"quoted\" ünïcode ✓",
	"qmq_expireTime":          "1733579100000",
}

func TestDecodeJavaRow(t *testing.T) {
	m, err := Decode([]byte(javaRow))
	if err != nil {
		t.Fatal(err)
	}
	if m.ID() != "241207.133000.10.88.1.7.4242.17" || m.Subject() != "order.paid" {
		t.Fatalf("decoded %s", m)
	}
	if got := m.Properties(); !maps.Equal(got, javaProps) {
		t.Fatalf("properties\n got %v\nwant %v", got, javaProps)
	}
	if got := m.Tags(); !slices.Equal(got, []string{"vip", "cn"}) {
		t.Fatalf("tags %q", got)
	}
	if m.CreatedAt().UnixMilli() != 1733578200000 || m.ScheduledAt().UnixMilli() != 1733578800000 {
		t.Fatalf("created %v, scheduled %v", m.CreatedAt(), m.ScheduledAt())
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("decoded message is not sendable: %v", err)
	}
}

// TestEncodeJavaForm checks Encode against the Java form: the same field
// order and escaping, and every property as a JSON string (which for the
// reserved longs is exactly what Java writes).
func TestEncodeJavaForm(t *testing.T) {
	props := map[string]string{
		"qmq_createTime":          "1733578200000",
		"qmq_expireTime":          "1733579100000",
		"qmq_appCode":             "orders",
		"qmq_scheduleReceiveTime": "1733578800000",
		"query":                   "a=1&b='x' <ok>",
		"note":                    "tab\there \"quoted\" ünïcode ✓ \u2028 \x01",
	}
	m := client.RestoreMessage("order.paid", "241207.133000.10.88.1.7.4242.17", props, []string{"vip", "cn"})
	want := `{"messageId":"241207.133000.10.88.1.7.4242.17","subject":"order.paid","tags":["vip","cn"],"storeAtFailed":false,"durable":true,"attrs":{` +
		`"note":"tab\there \"quoted\" ünïcode ✓ \u2028 \u0001",` +
		`"qmq_appCode":"orders",` +
		`"qmq_createTime":"1733578200000",` +
		`"qmq_expireTime":"1733579100000",` +
		`"qmq_scheduleReceiveTime":"1733578800000",` +
		`"query":"a\u003d1\u0026b\u003d\u0027x\u0027 \u003cok\u003e"}}`
	if got := string(Encode(m)); got != want {
		t.Fatalf("Encode\n got %s\nwant %s", got, want)
	}
	if !json.Valid(Encode(m)) {
		t.Fatal("Encode gave invalid JSON")
	}
	back, err := Decode(Encode(m))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(back.Properties(), props) || !slices.Equal(back.Tags(), m.Tags()) || back.ID() != m.ID() || back.Subject() != m.Subject() {
		t.Fatalf("round trip: %s %v %q", back, back.Properties(), back.Tags())
	}
	empty := client.RestoreMessage("s", "i", nil, nil)
	if got := string(Encode(empty)); got != `{"messageId":"i","subject":"s","tags":[],"storeAtFailed":false,"durable":true,"attrs":{}}` {
		t.Fatalf("empty message: %s", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct{ content, want string }{
		{`not json`, "not QMQ's JSON form"},
		{`{"subject":"s","attrs":{}}`, "lacks messageId or subject"},
		{`{"messageId":"i","attrs":{}}`, "lacks messageId or subject"},
		{`{"messageId":"i","subject":"s","tags":[null]}`, "tag 0 is null or empty"},
		{`{"messageId":"i","subject":"s","attrs":{"k":{"a":1}}}`, `attribute "k": is a JSON object`},
		{`{"messageId":"i","subject":"s","attrs":{"k":[1]}}`, `attribute "k": is a JSON array`},
		{`{"messageId":"i","subject":"s","attrs":{"k":"v"}`, "not QMQ's JSON form"},
	} {
		_, err := Decode([]byte(c.content))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Decode(%s) = %v, want an error containing %q", c.content, err, c.want)
		}
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts survives
// Encode and Decode unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(javaRow))
	f.Add([]byte(`{"messageId":"i","subject":"s","tags":[],"storeAtFailed":false,"durable":true,"attrs":{}}`))
	f.Add([]byte(`{"messageId":"i","subject":"s","attrs":{"":1,"a":-1.5e3,"b":false,"c":"\u2029\ud800"}}`))
	f.Fuzz(func(t *testing.T, content []byte) {
		m, err := Decode(content)
		if err != nil {
			return
		}
		enc := Encode(m)
		if !json.Valid(enc) {
			t.Fatalf("Encode gave invalid JSON: %s", enc)
		}
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(m)) failed: %v\ncontent %q\nencoded %s", err, content, enc)
		}
		if back.ID() != m.ID() || back.Subject() != m.Subject() || !maps.Equal(back.Properties(), m.Properties()) || !slices.Equal(back.Tags(), m.Tags()) {
			t.Fatalf("round trip changed the message\nfirst  %s %v %q\nsecond %s %v %q", m, m.Properties(), m.Tags(), back, back.Properties(), back.Tags())
		}
	})
}
