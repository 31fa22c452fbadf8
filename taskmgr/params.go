package taskmgr

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/connector-manager/cm/model"
)

// System parameters this node knows. Values live in system_params and are
// read fresh on every use, so a change takes effect without a restart.
const (
	ParamAuditRetention      = "operation_audit_log.retention_time"
	ParamAutoRestartEnable   = "task.autoRestart.enable"
	ParamAutoRestartMax      = "task.autoRestart.maxAttempts"
	ParamAutoRestartWindow   = "task.autoRestart.window"
	ParamAutoRestartInitial  = "task.autoRestart.backoff.initial"
	ParamAutoRestartMaxWait  = "task.autoRestart.backoff.max"
	ParamDelayThreshold      = "task.delay.threshold"
	ParamHeartbeatStaleAfter = "task.heartbeat.staleAfter"
	ParamHAEnable            = "ha.enable"
	ParamNodeSuspectAfter    = "node.suspectAfter"
	ParamNodeDeadAfter       = "node.deadAfter"
	paramJobSchedulePrefix   = "job."
	paramJobScheduleSuffix   = ".schedule"
	auditRetentionMin        = time.Minute
)

// JobScheduleParam is the parameter holding a job's cron schedule.
func JobScheduleParam(job string) string {
	return paramJobSchedulePrefix + job + paramJobScheduleSuffix
}

// paramKind says how a value is parsed and checked.
type paramKind string

const (
	kindDuration paramKind = "duration" // Go duration, plus d for days: 30s, 5m, 7d
	kindBool     paramKind = "bool"
	kindInt      paramKind = "int"
	kindSchedule paramKind = "schedule" // cron spec: 5 fields, or @every 10s, @hourly
)

// ParamSpec describes one known parameter.
type ParamSpec struct {
	Key         string
	Kind        paramKind
	Default     string
	Description string
	// Min bounds durations and ints from below (0: no bound besides > 0 for durations).
	Min int64
	// Secret values are never shown.
	Secret bool
}

// paramSpecs is the one list of known parameters, sorted by key.
var paramSpecs = allParamSpecs()

// baseParamSpecs are the parameters besides the job schedules.
var baseParamSpecs = []ParamSpec{
	{Key: ParamAuditRetention, Kind: kindDuration, Default: "7d", Min: int64(auditRetentionMin), Description: "operation audit rows older than this are purged by the audit-retention job"},
	{Key: ParamAutoRestartEnable, Kind: kindBool, Default: "true", Description: "resume EXCEPTION tasks whose desired state is RUNNING, unless their error is permanent"},
	{Key: ParamAutoRestartMax, Kind: kindInt, Default: "5", Min: 1, Description: "restarts of one task allowed within task.autoRestart.window"},
	{Key: ParamAutoRestartWindow, Kind: kindDuration, Default: "1h", Min: int64(time.Second), Description: "window the restart budget counts in"},
	{Key: ParamAutoRestartInitial, Kind: kindDuration, Default: "10s", Min: int64(time.Millisecond), Description: "wait before the first restart; doubles with each attempt (jittered)"},
	{Key: ParamAutoRestartMaxWait, Kind: kindDuration, Default: "5m", Min: int64(time.Millisecond), Description: "cap of the restart wait"},
	{Key: ParamDelayThreshold, Kind: kindDuration, Default: "5m", Min: int64(time.Second), Description: "checkpoint delay above which a task is flagged (warning)"},
	{Key: ParamHeartbeatStaleAfter, Kind: kindDuration, Default: "30s", Min: int64(time.Second), Description: "a RUNNING task whose heartbeat is older becomes EXCEPTION (HEARTBEAT_STALE)"},
	{Key: ParamHAEnable, Kind: kindBool, Default: "false", Description: "migrate the tasks of a dead node to a live node instead of marking them EXCEPTION"},
	{Key: ParamNodeSuspectAfter, Kind: kindDuration, Default: "10s", Min: int64(time.Second), Description: "a node not seen for this long is suspect"},
	{Key: ParamNodeDeadAfter, Kind: kindDuration, Default: "30s", Min: int64(time.Second), Description: "a node not seen for this long is dead"},
}

func allParamSpecs() []ParamSpec {
	out := append([]ParamSpec(nil), baseParamSpecs...)
	for _, j := range jobDefaults {
		out = append(out, ParamSpec{Key: JobScheduleParam(j.name), Kind: kindSchedule, Default: j.schedule,
			Description: "cron schedule of the " + j.name + " job (5 fields, or @every 10s)"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func specOf(key string) (ParamSpec, bool) {
	for _, s := range paramSpecs {
		if s.Key == key {
			return s, true
		}
	}
	return ParamSpec{}, false
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

// scheduleParser accepts standard 5-field specs and descriptors
// (@every 10s, @hourly). @every rounds below one second up to one second.
var scheduleParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// check validates v against the spec.
func (s ParamSpec) check(v string) error {
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
		if _, err := scheduleParser.Parse(v); err != nil {
			return bad("not a cron schedule (5 fields, or @every 10s): %v", err)
		}
	}
	return nil
}

// ParamView is one parameter as the API lists it.
type ParamView struct {
	Key         string     `json:"key"`
	Value       string     `json:"value"`
	Default     string     `json:"default"`
	Kind        string     `json:"kind"`
	Description string     `json:"description"`
	UpdatedAt   *time.Time `json:"updatedAt"`
}

// Params reads and writes system parameters: known keys only, typed and
// validated, with defaults for keys never set.
type Params struct {
	store *model.Store
	now   func() time.Time
}

// NewParams builds the parameter service.
func NewParams(store *model.Store) *Params { return &Params{store: store, now: time.Now} }

// Snapshot reads every parameter now. Jobs take one per run so a run sees
// one consistent set.
func (p *Params) Snapshot(ctx context.Context) (ParamSet, error) {
	rows, err := p.store.Params(ctx)
	if err != nil {
		return ParamSet{}, fmt.Errorf("reading system parameters: %w", err)
	}
	set := ParamSet{values: map[string]string{}}
	for _, r := range rows {
		if s, ok := specOf(r.Key); ok && s.check(r.Value) == nil {
			set.values[r.Key] = r.Value
		}
	}
	return set, nil
}

// List answers the params endpoint: every known key with its default and
// current value, secrets masked.
func (p *Params) List(ctx context.Context) ([]ParamView, error) {
	rows, err := p.store.Params(ctx)
	if err != nil {
		return nil, err
	}
	set := map[string]model.Param{}
	for _, r := range rows {
		set[r.Key] = r
	}
	out := make([]ParamView, 0, len(paramSpecs))
	for _, s := range paramSpecs {
		v := ParamView{Key: s.Key, Value: s.Default, Default: s.Default, Kind: string(s.Kind), Description: s.Description}
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
func (p *Params) Update(ctx context.Context, call Call, key, value string) error {
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
			At: p.now().UTC(), Actor: call.Actor, Operation: "params:update", RequestID: call.RequestID,
			Params: jsonString(map[string]string{"key": key, "value": show(value)}),
			Detail: jsonString(map[string]string{"before": show(before), "after": show(after)}),
			Result: model.ResultSuccess,
		})
	})
}

// ParamSet is a snapshot of the parameters with typed accessors. Values that
// fail validation (written around the API) fall back to the default.
type ParamSet struct {
	values map[string]string
}

func (s ParamSet) raw(key string) string {
	if v, ok := s.values[key]; ok {
		return v
	}
	spec, ok := specOf(key)
	if !ok {
		panic("taskmgr: unknown parameter " + key)
	}
	return spec.Default
}

// Duration reads a duration parameter.
func (s ParamSet) Duration(key string) time.Duration {
	d, err := ParseDuration(s.raw(key))
	if err != nil {
		spec, _ := specOf(key)
		d, _ = ParseDuration(spec.Default)
	}
	return d
}

// Bool reads a boolean parameter.
func (s ParamSet) Bool(key string) bool {
	b, _ := strconv.ParseBool(s.raw(key))
	return b
}

// Int reads an integer parameter.
func (s ParamSet) Int(key string) int {
	n, _ := strconv.Atoi(s.raw(key))
	return n
}

// Schedule reads a job's schedule spec.
func (s ParamSet) Schedule(job string) string { return s.raw(JobScheduleParam(job)) }

// Liveness is the node liveness thresholds of this snapshot.
func (s ParamSet) Liveness() Liveness {
	return Liveness{SuspectAfter: s.Duration(ParamNodeSuspectAfter), DeadAfter: s.Duration(ParamNodeDeadAfter)}
}

// ListParams lists the system parameters (for the API).
func (m *Manager) ListParams(ctx context.Context) ([]ParamView, error) { return m.params.List(ctx) }

// UpdateParam validates and sets a system parameter (for the API).
func (m *Manager) UpdateParam(ctx context.Context, call Call, key, value string) error {
	return m.params.Update(ctx, call, key, value)
}
