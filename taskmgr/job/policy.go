package job

import (
	"hash/fnv"
	"strconv"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/params"
)

// restartPolicy decides whether and when auto-restart resumes a failed
// task: jittered exponential backoff, a budget of MaxAttempts per Window,
// never for a permanent error.
type restartPolicy struct {
	Initial     time.Duration
	Max         time.Duration
	MaxAttempts int
	// Window is the span attempts are counted in; the caller counts them.
	Window time.Duration
	// Jitter spreads each wait by up to ±Jitter of itself (0.2 = ±20 %).
	Jitter float64
}

// policyFrom reads the policy from a parameter snapshot.
func policyFrom(set params.Set) restartPolicy {
	return restartPolicy{
		Initial: set.Duration(params.AutoRestartInitial), Max: set.Duration(params.AutoRestartMaxWait),
		MaxAttempts: set.Int(params.AutoRestartMax), Window: set.Duration(params.AutoRestartWindow), Jitter: 0.2,
	}
}

// Next says how long after the failure at now the next restart is due,
// given attempts restarts already made within the window, or ok=false when
// the task must not be restarted (permanent error, budget spent). The
// jitter is derived from now and attempts, so the same failure always gets
// the same wait: Next is a pure function.
func (p restartPolicy) Next(attempts int, lastErr *model.ErrorDetail, now time.Time) (wait time.Duration, ok bool) {
	if lastErr != nil && lastErr.Permanent {
		return 0, false
	}
	if attempts < 0 {
		attempts = 0
	}
	if attempts >= p.MaxAttempts {
		return 0, false
	}
	wait = p.Initial
	for i := 0; i < attempts && wait < p.Max; i++ {
		wait *= 2
	}
	if wait > p.Max {
		wait = p.Max
	}
	if p.Jitter > 0 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(strconv.FormatInt(now.UnixNano(), 10) + "/" + strconv.Itoa(attempts)))
		f := float64(h.Sum64()%10_000) / 10_000 // [0, 1)
		wait = time.Duration(float64(wait) * (1 - p.Jitter + 2*p.Jitter*f))
		if wait > p.Max {
			wait = p.Max
		}
	}
	return wait, true
}
