package taskmgr

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
)

// The use cases behind the Kafka Connect REST paths (server/kafkaconnect,
// docs/kafka-connect.md). Each is made of the operator calls above, or goes
// through mutate like them, so every write is one compare-and-swap with its
// audit row and the OMS and Kafka Connect paths share one audit trail.

// The states a Kafka Connect config change and offsets change run from
// without touching a runner. CREATED is a connector made with
// initial_state STOPPED: Kafka Connect lets its config and offsets be set
// before it first runs.
var (
	replaceStates = []model.State{model.StateCreated, model.StateStopped, model.StateException, model.StateFinished}
	offsetStates  = []model.State{model.StateCreated, model.StateStopped}
)

// ReplaceConfig replaces a task's whole config with cfg, the Kafka Connect
// way: a running (or paused) task is stopped, updated and started again
// (paused again), each step an audited call of its own (stop, update,
// resume or pause); a failed one meant to run is updated and started
// again; a task that runs nothing is only updated. The OMS update (merge, only when STOPPED or EXCEPTION)
// is unchanged. A mask sent back keeps the stored secret. cfg is checked
// before anything is stopped, so a config that does not build leaves the
// task running; a config equal to the stored one changes nothing.
func (m *Manager) ReplaceConfig(ctx context.Context, call Call, ref string, cfg model.Config, timeout time.Duration) (string, error) {
	t, err := m.load(ctx, ref, true)
	if err != nil {
		return "", err
	}
	release, err := m.replacing.acquire(ctx, t.Component)
	if err != nil {
		return "", err
	}
	defer release()
	// As the call before this one in turn left it.
	if t, err = m.load(ctx, ref, true); err != nil {
		return "", err
	}
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	stored, err := t.ParsedConfig()
	if err != nil {
		return "", err
	}
	next, err := cfg.Unmask(stored)
	if err != nil {
		return "", err
	}
	if reflect.DeepEqual(next, stored) {
		// Kafka Connect writes an unchanged config without restarting
		// anything; here nothing is written at all.
		return t.Name().String(), nil
	}
	if err := m.validateConfig(t.Name().Component, t.Node, next); err != nil {
		return "", err
	}
	again := func() (string, error) {
		if t.Desired == model.DesiredPaused {
			return m.Pause(ctx, call, ref, timeout)
		}
		return m.Resume(ctx, call, ref, ResumeOptions{Timeout: timeout})
	}
	live := t.State == model.StateRunning || t.State == model.StateStarting || t.State == model.StatePaused
	wanted := t.Desired == model.DesiredRunning || t.Desired == model.DesiredPaused
	switch {
	case t.State == model.StateException && wanted:
		// Failed while meant to run: it has no runner to stop, and is
		// started again with the new config, as Kafka Connect restarts a
		// failed connector whose config changed.
		if _, err := m.replaceConfig(ctx, call, ref, cfg); err != nil {
			return "", err
		}
		return again()
	case !live || !wanted:
		return m.replaceConfig(ctx, call, ref, cfg)
	}
	if _, err := m.Stop(ctx, call, ref, timeout); err != nil {
		return "", err
	}
	if _, err := m.replaceConfig(ctx, call, ref, cfg); err != nil {
		// Put the task back as it was, with its old config.
		if _, rerr := again(); rerr != nil {
			return "", errors.Join(err, fmt.Errorf("starting with the old config: %w", rerr))
		}
		return "", err
	}
	return again()
}

// replaceConfig is the update of ReplaceConfig: operation "update", as
// the OMS update, with the config before and after (masked) in its audit
// detail and "replace": true.
func (m *Manager) replaceConfig(ctx context.Context, call Call, ref string, cfg model.Config) (string, error) {
	started := m.now()
	var before, after model.Config
	call.Params = mergeParams(call.Params, map[string]string{"config": strings.Join(cfg.Keys(), ",")})
	call.again = true
	t, audit, err := m.mutate(ctx, call, "update", ref, func(t *model.Task) error {
		if err := checkState(t, "update (a config replace is allowed when nothing runs: CREATED, STOPPED, EXCEPTION or FINISHED)", replaceStates...); err != nil {
			return err
		}
		stored, err := t.ParsedConfig()
		if err != nil {
			return err
		}
		before = stored.Clone()
		next, err := cfg.Unmask(stored)
		if err != nil {
			return err
		}
		if err := m.validateConfig(t.Name().Component, t.Node, next); err != nil {
			return err
		}
		after = next
		t.SetConfig(next)
		return nil
	}, func(_ *model.Store, _ *model.Task, a *model.Audit) error {
		a.Detail = jsonString(map[string]any{"configBefore": before.Masked(), "configAfter": after.Masked(), "replace": true})
		return nil
	})
	if err != nil {
		return "", err
	}
	m.finish(ctx, audit, nil, started)
	return t.Name().String(), nil
}

// CheckConfig says whether cfg would be accepted for component (a create
// or a config replace on this node), without writing anything: the scope
// grammar, the references, and that its connectors build.
func (m *Manager) CheckConfig(component string, cfg model.Config) error {
	comp, err := model.ParseComponent(component)
	if err != nil {
		return err
	}
	if cfg, err = cfg.Unmask(nil); err != nil {
		return err
	}
	return m.validateConfig(comp, m.cfg.Node, cfg)
}

// Restart restarts a task the Kafka Connect way: a task in EXCEPTION is
// resumed; a running one is stopped and resumed (two audited calls),
// unless onlyFailed. A task that runs nothing is left as it is: restart
// does not start a stopped connector, nor move a paused one. It reports
// whether it restarted.
func (m *Manager) Restart(ctx context.Context, call Call, ref string, onlyFailed bool, timeout time.Duration) (bool, error) {
	t, err := m.load(ctx, ref, true)
	if err != nil {
		return false, err
	}
	switch t.State {
	case model.StateException:
		_, err := m.Resume(ctx, call, ref, ResumeOptions{Timeout: timeout})
		return err == nil, err
	case model.StateRunning, model.StateStarting:
		if onlyFailed || t.Desired != model.DesiredRunning {
			return false, nil
		}
		if _, err := m.Stop(ctx, call, ref, timeout); err != nil {
			return false, err
		}
		_, err := m.Resume(ctx, call, ref, ResumeOptions{Timeout: timeout})
		return err == nil, err
	case model.StateCreated, model.StatePaused, model.StateStopping, model.StateStopped, model.StateFinished, model.StateDeleted:
		return false, nil
	default:
		return false, nil
	}
}

// AlterOffsets sets where the named subtopics of a task that runs nothing
// (CREATED or STOPPED) resume: their positions in source.checkpoint, their
// durable progress dropped, the version bumped (a new incarnation), all in
// the one transaction of the call, audited as "offsets:alter". The
// pullback's guard rails apply (known subtopics, not in the future, within
// what the source holds, not forward past the task's progress unless
// force). It is one step with no runner involved, so unlike a pullback it
// needs no journal: a crash leaves it either written or not.
func (m *Manager) AlterOffsets(ctx context.Context, call Call, ref string, target map[string]int64, force bool) (string, error) {
	started := m.now()
	if len(target) == 0 {
		return "", fmt.Errorf("%w: no offsets to alter", model.ErrInvalidArgument)
	}
	subs := slices.Sorted(maps.Keys(target))
	call.Params = mergeParams(call.Params, map[string]string{"offsets": checkpoint.Format(target)})
	if force {
		call.Params["force"] = "true"
	}
	var detail map[string]any
	t, audit, err := m.mutate(ctx, call, "offsets:alter", ref, func(t *model.Task) error {
		if err := checkState(t, "alter offsets (allowed when STOPPED)", offsetStates...); err != nil {
			return err
		}
		plan, err := m.planRewind(ctx, t, func([]string) (map[string]int64, error) { return target, nil }, force, false)
		if err != nil {
			return err
		}
		cfg, err := t.ParsedConfig()
		if err != nil {
			return err
		}
		merged := map[string]int64{}
		if raw := cfg.Get("source", "checkpoint"); raw != "" {
			if merged, err = checkpoint.Parse(raw); err != nil {
				return err
			}
		}
		maps.Copy(merged, target)
		cfg.Set("source", "checkpoint", checkpoint.Format(merged))
		t.SetConfig(cfg)
		if t.Version >= model.MaxVersion {
			return fmt.Errorf("%w: %s has reached the last version", model.ErrInvalidArgument, t.Component)
		}
		detail = map[string]any{"versionBefore": t.Version, "progressBefore": plan.progressBefore,
			"checkpointBefore": plan.configBefore, "checkpointAfter": cfg.Get("source", "checkpoint"), "forced": force}
		t.Version++
		detail["versionAfter"] = t.Version
		return nil
	}, func(tx *model.Store, t *model.Task, a *model.Audit) error {
		a.Detail = jsonString(detail)
		if err := tx.ResetSubtopics(ctx, t.Component, subs, t.Version); err != nil {
			return err
		}
		return tx.StartIncarnation(ctx, t, "offsets:alter")
	})
	if err != nil {
		return "", err
	}
	m.finish(ctx, audit, nil, started)
	return t.Name().String(), nil
}

// ResetOffsets makes a task that runs nothing (CREATED or STOPPED) start
// from the beginning of its source when it next runs: source.checkpoint
// removed, every subtopic's durable progress dropped, the version bumped,
// in one transaction audited as "offsets:reset".
func (m *Manager) ResetOffsets(ctx context.Context, call Call, ref string) (string, error) {
	started := m.now()
	var detail map[string]any
	t, audit, err := m.mutate(ctx, call, "offsets:reset", ref, func(t *model.Task) error {
		if err := checkState(t, "reset offsets (allowed when STOPPED)", offsetStates...); err != nil {
			return err
		}
		cfg, err := t.ParsedConfig()
		if err != nil {
			return err
		}
		if t.Version >= model.MaxVersion {
			return fmt.Errorf("%w: %s has reached the last version", model.ErrInvalidArgument, t.Component)
		}
		detail = map[string]any{"versionBefore": t.Version, "checkpointBefore": cfg.Get("source", "checkpoint")}
		cfg.Delete("source", "checkpoint")
		t.SetConfig(cfg)
		t.Version++
		detail["versionAfter"] = t.Version
		return nil
	}, func(tx *model.Store, t *model.Task, a *model.Audit) error {
		a.Detail = jsonString(detail)
		if err := tx.ResetProgress(ctx, t.Component); err != nil {
			return err
		}
		return tx.StartIncarnation(ctx, t, "offsets:reset")
	})
	if err != nil {
		return "", err
	}
	m.finish(ctx, audit, nil, started)
	return t.Name().String(), nil
}
