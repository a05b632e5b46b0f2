package framework

// maxDump is how much of a log a failed test shows: the end, where the
// failure is.
const maxDump = 20000

func tail(s string) string {
	if len(s) > maxDump {
		return "…" + s[len(s)-maxDump:]
	}
	return s
}
