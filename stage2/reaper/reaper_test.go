package reaper

import "testing"

func TestResultFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want Result
	}{
		{map[string]string{"SERVICE_RESULT": "success", "EXIT_CODE": "exited", "EXIT_STATUS": "0"}, Result{0, false}},
		{map[string]string{"SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "7"}, Result{7, true}},
		// SIGTERM from a stop is clean for systemd, and recorded as 143.
		{map[string]string{"SERVICE_RESULT": "success", "EXIT_CODE": "killed", "EXIT_STATUS": "TERM"}, Result{143, false}},
		{map[string]string{"SERVICE_RESULT": "signal", "EXIT_CODE": "killed", "EXIT_STATUS": "KILL"}, Result{137, true}},
		{map[string]string{"SERVICE_RESULT": "core-dump", "EXIT_CODE": "dumped", "EXIT_STATUS": "SEGV"}, Result{139, true}},
		{map[string]string{"SERVICE_RESULT": "timeout", "EXIT_CODE": "exited", "EXIT_STATUS": "0"}, Result{1, true}},
		{map[string]string{"SERVICE_RESULT": "resources"}, Result{254, true}},
	} {
		if got := ResultFromEnv(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("ResultFromEnv(%v) = %+v, want %+v", tc.env, got, tc.want)
		}
	}
}
