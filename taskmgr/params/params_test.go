package params

import (
	"testing"
	"time"
)

func TestParamCheck(t *testing.T) {
	cases := []struct {
		key, value string
		ok         bool
	}{
		{AuditRetention, "7d", true},
		{AuditRetention, "90m", true},
		{AuditRetention, "10s", false},
		{AuditRetention, "seven days", false},
		{AutoRestartEnable, "false", true},
		{AutoRestartEnable, "maybe", false},
		{AutoRestartMax, "3", true},
		{AutoRestartMax, "0", false},
		{NodeDeadAfter, "45s", true},
		{NodeDeadAfter, "-1s", false},
		{JobSchedule("audit-retention"), "@every 1s", true},
		{JobSchedule("audit-retention"), "*/5 * * * *", true},
		{JobSchedule("audit-retention"), "every second", false},
	}
	for _, c := range cases {
		s, ok := specOf(c.key)
		if !ok {
			t.Fatalf("unknown key %s", c.key)
		}
		if err := s.check(c.value); (err == nil) != c.ok {
			t.Errorf("%s=%q: err %v, want ok=%v", c.key, c.value, err, c.ok)
		}
	}
	if d, err := ParseDuration("7d"); err != nil || d != 7*24*time.Hour {
		t.Fatalf("7d = %s %v", d, err)
	}
}
