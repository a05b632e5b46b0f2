package metaserver

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/protocol"
)

// alphabet is how every refusal of a name describes the legal ones.
const alphabet = "subjects are 1 to 100 characters of ASCII letters A-Z a-z, digits 0-9, '.', '_' and '-'"

// TestManagementRefusesIllegalNames: AddNewSubject refuses every subject
// that is not a legal name with an error saying which character at which
// position is wrong and what is allowed, and writes nothing; legal names —
// dots, dashes, underscores, digits, 100 characters — are declared. The
// other actions that write a subject or group refuse the same names, and
// so does CLIENT_REGISTER, which still takes retry subjects and a broadcast
// consumer's client id.
func TestManagementRefusesIllegalNames(t *testing.T) {
	h := startServer(t, nil)
	ctx := context.Background()
	bad := map[string]string{
		" ":                          "a space (U+0020) at position 1",
		" order":                     "a space (U+0020) at position 1",
		"order ":                     "a space (U+0020) at position 6",
		"*":                          "'*' (U+002A) at position 1",
		"a\tb":                       `'\t' (U+0009) at position 2`,
		"x';DROP TABLE subject_info": `'\'' (U+0027) at position 2`,
		"a;b":                        "';' (U+003B) at position 2",
		"a/b":                        "'/' (U+002F) at position 2",
		"a\"b":                       `'"' (U+0022) at position 2`,
		"订单":                         "'订' (U+8BA2) at position 1",
		"%RETRY%order%g":             `the prefix "%RETRY%" is reserved`,
		"%DEAD_RETRY%order%g":        `the prefix "%DEAD_RETRY%" is reserved`,
		strings.Repeat("a", 101):     "101 characters long, over the limit of 100",
	}
	for name, want := range bad {
		body := postManagement(t, h, "action=AddNewSubject&tag=t&subject="+url.QueryEscape(name))
		var res struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &res); err != nil {
			t.Fatalf("AddNewSubject %q: answer is not JSON: %s", name, body)
		}
		if !strings.Contains(res.Error, "illegal subject") || !strings.Contains(res.Error, want) || !strings.Contains(res.Error, alphabet) {
			t.Errorf("AddNewSubject %q answered %s; want an error with %q and the alphabet", name, body, want)
		}
	}
	if infos, err := h.srv.store.ListSubjectInfos(ctx); err != nil || len(infos) != 0 {
		t.Fatalf("subject_info after illegal names: %+v, %v; want no rows", infos, err)
	}

	good := []string{"order.created", "Pay-Done_v2", "0", strings.Repeat("s", 100)}
	for _, name := range good {
		body := postManagement(t, h, "action=AddNewSubject&tag=t&subject="+url.QueryEscape(name))
		if !strings.Contains(body, `"data"`) || strings.Contains(body, `"error"`) {
			t.Errorf("AddNewSubject %q refused: %s", name, body)
		}
	}
	if infos, err := h.srv.store.ListSubjectInfos(ctx); err != nil || len(infos) != len(good) {
		t.Fatalf("subject_info after legal names: %+v, %v; want %d rows", infos, err, len(good))
	}

	for _, form := range []string{
		"action=AddSubjectBrokerGroup&brokerGroup=g1&subject=a+b",
		"action=MarkReadonlyBrokerGroup&brokerGroup=g1&subject=a+b",
		"action=ExtendSubjectRoute&relatedSubject=a%3Bb&relatedBrokerGroup=g1&newBrokerGroup=g2",
		"action=ResetOffset&subject=a+b&group=g&code=1",
		"action=ResetOffset&subject=order.created&group=g%3Bx&code=1",
		"action=ResetOffset&subject=order.created&group=%25RETRY%25g&code=1",
	} {
		if body := postManagement(t, h, form); !strings.Contains(body, "illegal") || !strings.Contains(body, "at position") {
			t.Errorf("%s answered %s; want a refusal of the illegal name", form, body)
		}
	}
	if rs, err := h.srv.store.ListReadonlySettings(ctx); err != nil || len(rs) != 0 {
		t.Errorf("readonly settings after an illegal MarkReadonly: %+v, %v", rs, err)
	}
	if _, body := h.get("/onoffline?operation=update&clientId=c1&subject=a+b&consumerGroup=g&state=1"); !strings.Contains(body, "illegal subject") {
		t.Errorf("onoffline update of an illegal subject: %s", body)
	}

	c := h.metaClient()
	for _, r := range []protocol.ClientRegisterRequest{
		{Subject: "a b", ClientTypeCode: protocol.ClientTypeProducer},
		{Subject: "%RETRY%order", ClientTypeCode: protocol.ClientTypeConsumer, ConsumerGroup: "g"},
		{Subject: "order.created", ClientTypeCode: protocol.ClientTypeConsumer, ConsumerGroup: "g*"},
	} {
		r.AppCode, r.ClientID, r.RequestType = "app", "c1", protocol.ClientRequestOnline
		if _, err := c.RegisterClient(ctx, r); err == nil || !strings.Contains(err.Error(), "illegal") {
			t.Errorf("CLIENT_REGISTER %q/%q: %v; want a refusal of the illegal name", r.Subject, r.ConsumerGroup, err)
		}
	}
	for _, r := range []protocol.ClientRegisterRequest{
		{Subject: protocol.RetrySubject("order.created", "g"), ClientTypeCode: protocol.ClientTypeConsumer, ConsumerGroup: "g", ClientID: "c1"},
		{Subject: "order.created", ClientTypeCode: protocol.ClientTypeConsumer, ConsumerGroup: "host@@12.ab", ClientID: "host@@12.ab"},
		{Subject: "order.created", ClientTypeCode: protocol.ClientTypeConsumer, ConsumerGroup: "host@@12.ab_beta_b1", ClientID: "host@@12.ab"},
	} {
		r.AppCode, r.RequestType = "app", protocol.ClientRequestOnline
		if _, err := c.RegisterClient(ctx, r); err != nil && strings.Contains(err.Error(), "illegal") {
			t.Errorf("CLIENT_REGISTER %q/%q refused: %v", r.Subject, r.ConsumerGroup, err)
		}
	}
}
