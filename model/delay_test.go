package model

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestFormatDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{400 * time.Microsecond, "0s"},
		{250 * time.Millisecond, "250ms"},
		{999 * time.Millisecond, "999ms"},
		{time.Second, "1s"},
		{12 * time.Second, "12s"},
		{12*time.Second + 600*time.Millisecond, "13s"},
		{59*time.Second + 600*time.Millisecond, "1m"},
		{90 * time.Second, "1m30s"},
		{5 * time.Minute, "5m"},
		{59*time.Minute + 59*time.Second + 600*time.Millisecond, "1h"},
		{time.Hour + 30*time.Minute + 20*time.Second, "1h30m"},
		{time.Hour + 29*time.Minute + 40*time.Second, "1h30m"},
		{23*time.Hour + 59*time.Minute + 40*time.Second, "1d"},
		{3*24*time.Hour + 4*time.Hour + 5*time.Minute, "3d4h"},
		{33294*time.Hour + 44*time.Minute + 50*time.Second, "1387d7h"},
		{-12 * time.Second, "-12s"},
		{math.MaxInt64, "106751d23h"},
		{math.MinInt64, "-106751d23h"},
	} {
		if got := FormatDuration(c.d); got != c.want {
			t.Errorf("FormatDuration(%s) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestTaskDelay(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	task := &Task{Version: 2, State: StateRunning}
	cps := []Checkpoint{{Subtopic: "a", Version: 2, TS: now.Unix() - 3600}, {Subtopic: "b", Version: 2, TS: now.Unix() - 60},
		{Subtopic: "old", Version: 1, TS: 0}}
	beat := func(version int64, metrics string) *Heartbeat { return &Heartbeat{Version: version, Metrics: metrics} }
	fresh := 30 * time.Second
	for _, c := range []struct {
		name string
		hb   *Heartbeat
		want time.Duration
		from string
	}{
		{"no heartbeat: the oldest checkpoint", nil, time.Hour, DelayFromCheckpoint},
		{"no delay reported", beat(2, `{"records":5}`), time.Hour, DelayFromCheckpoint},
		{"caught up", beat(2, metrics(0, now.Add(-2*time.Second))), 0, DelayFromSource},
		{"behind by the source's word", beat(2, metrics(90, now)), 90 * time.Second, DelayFromSource},
		{"a report older than fresh", beat(2, metrics(0, now.Add(-31*time.Second))), time.Hour, DelayFromCheckpoint},
		{"a report of another incarnation", beat(1, metrics(0, now)), time.Hour, DelayFromCheckpoint},
		{"a delay without its time", beat(2, `{"delaySeconds":0}`), time.Hour, DelayFromCheckpoint},
		{"a negative delay", beat(2, `{"delaySeconds":-5,"delayAt":1700000000}`), time.Hour, DelayFromCheckpoint},
		{"not JSON", beat(2, `{`), time.Hour, DelayFromCheckpoint},
	} {
		d, from, ok := TaskDelay(task, cps, c.hb, now, fresh)
		if !ok || d != c.want || from != c.from {
			t.Errorf("%s: TaskDelay = %s, %s, %v; want %s, %s", c.name, d, from, ok, c.want, c.from)
		}
	}
	stopped := &Task{Version: 2, State: StateStopped}
	if d, from, _ := TaskDelay(stopped, cps, beat(2, metrics(0, now)), now, fresh); d != time.Hour || from != DelayFromCheckpoint {
		t.Errorf("a stopped task's last report counts: %s from %s", d, from)
	}
	if _, _, ok := TaskDelay(task, nil, nil, now, fresh); ok {
		t.Error("TaskDelay without checkpoints or a report is ok")
	}
}

func metrics(delay int, at time.Time) string {
	b, _ := json.Marshal(DelayMetrics(time.Duration(delay)*time.Second, at))
	return string(b)
}
