package protocol

import "testing"

func TestRealSubject(t *testing.T) {
	for in, want := range map[string]string{
		"order":                              "order",
		"%RETRY%order%g1":                    "order",
		"%DEAD_RETRY%order%g1":               "order",
		"%RETRY%%DEAD_RETRY%order%g1%reader": "order",
		RetrySubject("a.b", "g"):             "a.b",
		DeadRetrySubject("a.b", "g"):         "a.b",
		"100%":                               "100%",
	} {
		if got := RealSubject(in); got != want {
			t.Errorf("RealSubject(%q) = %q, want %q", in, got, want)
		}
	}
}
