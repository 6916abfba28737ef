package journal

import (
	"encoding/json"
	"testing"
)

// parseReply reads what the pod's journald (or whatever listens on its
// socket) answers.
func FuzzParseReply(f *testing.F) {
	f.Add([]byte(`{"parameters":{}}`))
	f.Add([]byte(`{"error":"io.systemd.Journal.NotSupportedByNamespaces"}`))
	f.Add([]byte(`{"error":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := parseReply(b)
		var probe struct{ Error string }
		if json.Unmarshal(b, &probe) != nil || probe.Error != "" {
			// Not a reply, or one naming an error: never success.
			if err == nil {
				t.Errorf("reply %q parsed as success", b)
			}
		} else if err != nil {
			t.Errorf("reply %q: %v", b, err)
		}
	})
}
