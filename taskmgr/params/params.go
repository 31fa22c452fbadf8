// Package params is the catalogue of system parameters: the known keys, their
// kinds, defaults and validation, and the service that reads and writes them.
// Values live in system_params and are read fresh on every use, so a change
// takes effect without a restart.
package params

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/connector-manager/cm/model"
)

// System parameters this node knows. Values live in system_params and are
// read fresh on every use, so a change takes effect without a restart.
const (
	AuditRetention      = "operation_audit_log.retention_time"
	AutoRestartEnable   = "task.autoRestart.enable"
	AutoRestartMax      = "task.autoRestart.maxAttempts"
	AutoRestartWindow   = "task.autoRestart.window"
	AutoRestartInitial  = "task.autoRestart.backoff.initial"
	AutoRestartMaxWait  = "task.autoRestart.backoff.max"
	DelayThreshold      = "task.delay.threshold"
	HeartbeatStaleAfter = "task.heartbeat.staleAfter"
	HAEnable            = "ha.enable"
	NodeSuspectAfter    = "node.suspectAfter"
	NodeDeadAfter       = "node.deadAfter"
	jobSchedulePrefix   = "job."
	jobScheduleSuffix   = ".schedule"
	auditRetentionMin   = time.Minute
)

// Names of the cluster-wide jobs (taskmgr/job); each has a schedule
// parameter.
const (
	JobTaskLiveness   = "task-liveness"
	JobNodeLiveness   = "node-liveness"
	JobAutoRestart    = "auto-restart"
	JobDelayWatch     = "delay-watch"
	JobAuditRetention = "audit-retention"
)

// jobDefaults are the jobs and their default schedules.
var jobDefaults = []struct{ name, schedule string }{
	{JobTaskLiveness, "@every 10s"},
	{JobNodeLiveness, "@every 10s"},
	{JobAutoRestart, "@every 5s"},
	{JobDelayWatch, "@every 30s"},
	{JobAuditRetention, "@every 1h"},
}

// Jobs lists the job names, in catalogue order.
func Jobs() []string {
	out := make([]string, len(jobDefaults))
	for i, j := range jobDefaults {
		out[i] = j.name
	}
	return out
}

// JobSchedule is the parameter holding a job's cron schedule.
func JobSchedule(job string) string {
	return jobSchedulePrefix + job + jobScheduleSuffix
}

// kind says how a value is parsed and checked.
type kind string

const (
	kindDuration kind = "duration" // Go duration, plus d for days: 30s, 5m, 7d
	kindBool     kind = "bool"
	kindInt      kind = "int"
	kindSchedule kind = "schedule" // cron spec: 5 fields, or @every 10s, @hourly
)

// spec describes one known parameter.
type spec struct {
	Key         string
	Kind        kind
	Default     string
	Description string
	// Min bounds durations and ints from below (0: no bound besides > 0 for durations).
	Min int64
	// Secret values are never shown.
	Secret bool
}

// specs is the one list of known parameters, sorted by key.
var specs = allSpecs()

// baseSpecs are the parameters besides the job schedules.
var baseSpecs = []spec{
	{Key: AuditRetention, Kind: kindDuration, Default: "7d", Min: int64(auditRetentionMin), Description: "operation audit rows older than this are purged by the audit-retention job"},
	{Key: AutoRestartEnable, Kind: kindBool, Default: "true", Description: "resume EXCEPTION tasks whose desired state is RUNNING, unless their error is permanent"},
	{Key: AutoRestartMax, Kind: kindInt, Default: "5", Min: 1, Description: "restarts of one task allowed within task.autoRestart.window"},
	{Key: AutoRestartWindow, Kind: kindDuration, Default: "1h", Min: int64(time.Second), Description: "window the restart budget counts in"},
	{Key: AutoRestartInitial, Kind: kindDuration, Default: "10s", Min: int64(time.Millisecond), Description: "wait before the first restart; doubles with each attempt (jittered)"},
	{Key: AutoRestartMaxWait, Kind: kindDuration, Default: "5m", Min: int64(time.Millisecond), Description: "cap of the restart wait"},
	{Key: DelayThreshold, Kind: kindDuration, Default: "5m", Min: int64(time.Second), Description: "checkpoint delay above which a task is flagged (warning)"},
	{Key: HeartbeatStaleAfter, Kind: kindDuration, Default: "30s", Min: int64(time.Second), Description: "a RUNNING task whose heartbeat is older becomes EXCEPTION (HEARTBEAT_STALE)"},
	{Key: HAEnable, Kind: kindBool, Default: "false", Description: "migrate the tasks of a dead node to a live node instead of marking them EXCEPTION"},
	{Key: NodeSuspectAfter, Kind: kindDuration, Default: "10s", Min: int64(time.Second), Description: "a node not seen for this long is suspect"},
	{Key: NodeDeadAfter, Kind: kindDuration, Default: "30s", Min: int64(time.Second), Description: "a node not seen for this long is dead"},
}

func allSpecs() []spec {
	out := append([]spec(nil), baseSpecs...)
	for _, j := range jobDefaults {
		out = append(out, spec{Key: JobSchedule(j.name), Kind: kindSchedule, Default: j.schedule,
			Description: "cron schedule of the " + j.name + " job (5 fields, or @every 10s)"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func specOf(key string) (spec, bool) {
	for _, s := range specs {
		if s.Key == key {
			return s, true
		}
	}
	return spec{}, false
}

// ParseDuration parses a Go duration or a whole number of days ("7d").
func ParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 || n > 36500 {
			return 0, fmt.Errorf("%q is not a number of days", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

// ScheduleParser accepts standard 5-field specs and descriptors
// (@every 10s, @hourly). @every rounds below one second up to one second.
var ScheduleParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// check validates v against the spec.
func (s spec) check(v string) error {
	bad := func(why string, args ...any) error {
		return fmt.Errorf("%w: %s=%q: %s", model.ErrInvalidArgument, s.Key, v, fmt.Sprintf(why, args...))
	}
	switch s.Kind {
	case kindDuration:
		d, err := ParseDuration(v)
		if err != nil {
			return bad("not a duration like 30s, 5m or 7d")
		}
		if d <= 0 || int64(d) < s.Min {
			return bad("must be at least %s", time.Duration(max(s.Min, 1)))
		}
	case kindBool:
		if _, err := strconv.ParseBool(v); err != nil {
			return bad("not true or false")
		}
	case kindInt:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < s.Min || n > 1_000_000 {
			return bad("not an integer in [%d, 1000000]", s.Min)
		}
	case kindSchedule:
		if _, err := ScheduleParser.Parse(v); err != nil {
			return bad("not a cron schedule (5 fields, or @every 10s): %v", err)
		}
	}
	return nil
}

// View is one parameter as the API lists it.
type View struct {
	Key         string     `json:"key"`
	Value       string     `json:"value"`
	Default     string     `json:"default"`
	Kind        string     `json:"kind"`
	Description string     `json:"description"`
	UpdatedAt   *time.Time `json:"updatedAt"`
}

// Service reads and writes system parameters: known keys only, typed and
// validated, with defaults for keys never set.
type Service struct {
	store *model.Store
	now   func() time.Time

	mu     sync.Mutex // guards recent and readAt
	recent Set
	readAt time.Time
}

// recentFor is how old a snapshot Recent may answer with.
const recentFor = time.Second

// New builds the parameter service.
func New(store *model.Store) *Service { return &Service{store: store, now: time.Now} }

// Recent is a snapshot read at most a second ago: for the read side, which
// would otherwise read the parameters for every detail it answers. A change
// (on any node) shows within that second.
func (p *Service) Recent(ctx context.Context) (Set, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := p.now(); p.recent.values != nil && now.Sub(p.readAt) < recentFor && !now.Before(p.readAt) {
		return p.recent, nil
	}
	set, err := p.Snapshot(ctx)
	if err != nil {
		return Set{}, err
	}
	p.recent, p.readAt = set, p.now()
	return set, nil
}

func (p *Service) forget() {
	p.mu.Lock()
	p.recent = Set{}
	p.mu.Unlock()
}

// Snapshot reads every parameter now. Jobs take one per run so a run sees
// one consistent set.
func (p *Service) Snapshot(ctx context.Context) (Set, error) {
	rows, err := p.store.Params(ctx)
	if err != nil {
		return Set{}, fmt.Errorf("reading system parameters: %w", err)
	}
	set := Set{values: map[string]string{}}
	for _, r := range rows {
		if s, ok := specOf(r.Key); ok && s.check(r.Value) == nil {
			set.values[r.Key] = r.Value
		}
	}
	return set, nil
}

// List answers the params endpoint: every known key with its default and
// current value, secrets masked.
func (p *Service) List(ctx context.Context) ([]View, error) {
	rows, err := p.store.Params(ctx)
	if err != nil {
		return nil, err
	}
	set := map[string]model.Param{}
	for _, r := range rows {
		set[r.Key] = r
	}
	out := make([]View, 0, len(specs))
	for _, s := range specs {
		v := View{Key: s.Key, Value: s.Default, Default: s.Default, Kind: string(s.Kind), Description: s.Description}
		if r, ok := set[s.Key]; ok {
			v.Value = r.Value
			at := r.UpdatedAt
			v.UpdatedAt = &at
		}
		if s.Secret || model.IsSecretKey(s.Key) {
			v.Value = model.Masked
		}
		out = append(out, v)
	}
	return out, nil
}

// Update validates and sets a parameter, with its audit row in the same
// transaction. An empty value resets the parameter to its default.
func (p *Service) Update(ctx context.Context, actor, requestID, key, value string) error {
	s, ok := specOf(key)
	if !ok {
		return fmt.Errorf("%w: unknown parameter %q (GET params lists them)", model.ErrInvalidArgument, key)
	}
	value = strings.TrimSpace(value)
	if value != "" {
		if err := s.check(value); err != nil {
			return err
		}
	}
	// The change shows at once on this node.
	defer p.forget()
	secret := s.Secret || model.IsSecretKey(key)
	show := func(v string) string {
		if secret && v != "" {
			return model.Masked
		}
		return v
	}
	return p.store.Tx(ctx, func(tx *model.Store) error {
		rows, err := tx.Params(ctx)
		if err != nil {
			return err
		}
		before := s.Default
		for _, r := range rows {
			if r.Key == key {
				before = r.Value
			}
		}
		if value == "" {
			err = tx.DeleteParam(ctx, key)
		} else {
			err = tx.SetParam(ctx, key, value)
		}
		if err != nil {
			return err
		}
		after := value
		if after == "" {
			after = s.Default
		}
		return tx.InsertAudit(ctx, &model.Audit{
			At: p.now().UTC(), Actor: actor, Operation: "params:update", RequestID: requestID,
			Params: jsonString(map[string]string{"key": key, "value": show(value)}),
			Detail: jsonString(map[string]string{"before": show(before), "after": show(after)}),
			Result: model.ResultSuccess,
		})
	})
}

// Set is a snapshot of the parameters with typed accessors. Values that
// fail validation (written around the API) fall back to the default.
type Set struct {
	values map[string]string
}

func (s Set) raw(key string) string {
	if v, ok := s.values[key]; ok {
		return v
	}
	spec, ok := specOf(key)
	if !ok {
		panic("params: unknown parameter " + key)
	}
	return spec.Default
}

// Duration reads a duration parameter.
func (s Set) Duration(key string) time.Duration {
	d, err := ParseDuration(s.raw(key))
	if err != nil {
		spec, _ := specOf(key)
		d, _ = ParseDuration(spec.Default)
	}
	return d
}

// Bool reads a boolean parameter.
func (s Set) Bool(key string) bool {
	b, _ := strconv.ParseBool(s.raw(key))
	return b
}

// Int reads an integer parameter.
func (s Set) Int(key string) int {
	n, _ := strconv.Atoi(s.raw(key))
	return n
}

// Schedule reads a job's schedule spec.
func (s Set) Schedule(job string) string { return s.raw(JobSchedule(job)) }

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
