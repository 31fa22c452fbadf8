package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
)

// HeaderIdempotencyKey names a mutating call so that a retry of it returns
// the first call's answer instead of acting again.
const HeaderIdempotencyKey = "Idempotency-Key"

// headerReplayed marks an answer replayed from an earlier call.
const headerReplayed = "Idempotent-Replayed"

// errKeyReused marks an Idempotency-Key sent again with another request.
var errKeyReused = errors.New("idempotency key reused with a different request")

// IdempotencyStore keeps Idempotency-Keys and their answers where every
// node sees them (model.Store).
type IdempotencyStore interface {
	ClaimIdempotencyKey(ctx context.Context, k model.IdempotencyKey) (*model.IdempotencyKey, bool, error)
	CompleteIdempotencyKey(ctx context.Context, actor, key, owner string, status int, answer string) error
	ReleaseIdempotencyKey(ctx context.Context, actor, key, owner string) error
	AbandonIdempotencyKey(ctx context.Context, actor, key, owner string) error
	PurgeIdempotencyKeys(ctx context.Context, before time.Time) (int64, error)
}

// maxKeyLen bounds an Idempotency-Key (a UUID is 36).
const maxKeyLen = 128

// maxKeptAnswer bounds an answer that is kept; a longer one is not (the
// key is released), which no mutating call's envelope comes near.
const maxKeptAnswer = 60 << 10

// idempotency makes a mutating call carrying an Idempotency-Key act once
// per client and key within ttl:
//   - the first call claims the key (a row in the store) and runs; its
//     answer is kept with the key, unless it is retryable (nothing was done,
//     or a wait ran out: the retry should run again), which releases the key;
//   - a later call with the key and the same request (method, route, query,
//     body) gets the kept answer, marked Idempotent-Replayed: true, and does
//     not run; with another request it is refused, 422 IDEMPOTENCY_KEY_REUSED;
//   - a call that finds the key claimed by a call still running waits for
//     its answer (polling the store, so across nodes too) for as long as
//     its own request lasts; a claim older than stale (longer than any
//     exchange may last: its node died) is abandoned and taken over.
//
// It runs after readBody, so the body is in memory.
func idempotency(keys IdempotencyStore, ttl, stale time.Duration, log *zap.Logger) echo.MiddlewareFunc {
	var purgeMu sync.Mutex
	var lastPurge time.Time
	purge := func(ctx context.Context, now time.Time) {
		purgeMu.Lock()
		due := now.Sub(lastPurge) >= time.Minute
		if due {
			lastPurge = now
		}
		purgeMu.Unlock()
		if due {
			if _, err := keys.PurgeIdempotencyKeys(ctx, now); err != nil {
				log.Warn("purging expired idempotency keys", zap.Error(err))
			}
		}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			key := c.Request().Header.Get(HeaderIdempotencyKey)
			if key == "" || !mutating(c) {
				return next(c)
			}
			if err := checkKey(key, len(c.Request().Header.Values(HeaderIdempotencyKey))); err != nil {
				return err
			}
			fp, err := fingerprint(c)
			if err != nil {
				return err
			}
			ctx := c.Request().Context()
			actor := client(c)
			purge(ctx, time.Now())
			wait := 50 * time.Millisecond
			for {
				now := time.Now().UTC()
				claim := model.IdempotencyKey{Actor: actor, Key: key, Fingerprint: fp, Owner: newOwner(), CreatedAt: now, ExpiresAt: now.Add(ttl)}
				cur, claimed, err := keys.ClaimIdempotencyKey(ctx, claim)
				switch {
				case err != nil:
					return err
				case claimed:
					return runClaimed(c, next, keys, claim, log)
				case cur.Fingerprint != fp:
					return fmt.Errorf("%w: %s %q was first sent to another route or with other parameters (keys are kept %s)",
						errKeyReused, HeaderIdempotencyKey, key, ttl)
				case !cur.Pending():
					return replay(c, cur)
				case now.Sub(cur.CreatedAt) > stale:
					if err := keys.AbandonIdempotencyKey(ctx, actor, key, cur.Owner); err != nil {
						return err
					}
					continue
				}
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return fmt.Errorf("waiting for the call that first sent %s %q: %w", HeaderIdempotencyKey, key, ctx.Err())
				case <-t.C:
				}
				wait = min(2*wait, time.Second)
			}
		}
	}
}

// checkKey refuses a key that is empty, too long, sent twice or not
// printable ASCII.
func checkKey(key string, n int) error {
	bad := n > 1 || len(key) > maxKeyLen
	for i := 0; i < len(key) && !bad; i++ {
		bad = key[i] < 0x21 || key[i] > 0x7e
	}
	if bad {
		return fmt.Errorf("%w: %s must be sent once, 1 to %d printable ASCII characters (e.g. a UUID)", model.ErrInvalidArgument, HeaderIdempotencyKey, maxKeyLen)
	}
	return nil
}

// fingerprint is the hash of what makes a request the same request: its
// method, route, query and body.
func fingerprint(c echo.Context) (string, error) {
	req := c.Request()
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return "", fmt.Errorf("%w: %v", errBadBody, err)
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	h := sha256.New()
	for _, part := range []string{req.Method, c.Path(), req.URL.Query().Encode(), req.Header.Get(echo.HeaderContentType)} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func newOwner() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// teeWriter passes an answer on and keeps a copy of it.
type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *teeWriter) Write(b []byte) (int, error) {
	if w.buf.Len() <= maxKeptAnswer {
		w.buf.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// runClaimed runs the call that claimed the key and keeps its answer, or
// releases the key when the answer is not to be kept. Either is written
// with a context of its own: a client gone must not leave the claim behind.
func runClaimed(c echo.Context, next echo.HandlerFunc, keys IdempotencyStore, claim model.IdempotencyKey, log *zap.Logger) error {
	ended := false
	defer func() {
		if !ended { // a panic: the recover middleware answers it
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 5*time.Second)
			defer cancel()
			_ = keys.ReleaseIdempotencyKey(ctx, claim.Actor, claim.Key, claim.Owner)
		}
	}()
	res := c.Response()
	tee := &teeWriter{ResponseWriter: res.Writer}
	res.Writer = tee
	if err := next(c); err != nil {
		c.Error(err) // answered here, so the answer is the one kept
	}
	res.Writer = tee.ResponseWriter
	ended = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 5*time.Second)
	defer cancel()
	if keep(res.Status, tee.buf.Bytes()) {
		err := keys.CompleteIdempotencyKey(ctx, claim.Actor, claim.Key, claim.Owner, res.Status, tee.buf.String())
		if err == nil {
			return nil
		}
		log.Warn("keeping the answer of an idempotency key", zap.String(logRequestID, requestID(c)), zap.Error(err))
	}
	if err := keys.ReleaseIdempotencyKey(ctx, claim.Actor, claim.Key, claim.Owner); err != nil {
		log.Warn("releasing an idempotency key", zap.String(logRequestID, requestID(c)), zap.Error(err))
	}
	return nil
}

// keep reports whether an answer is kept for retries: a success, or a
// refusal a retry would get again (not retryable).
func keep(status int, body []byte) bool {
	if status == 0 || status >= 500 || len(body) == 0 || len(body) > maxKeptAnswer {
		return false
	}
	var env struct {
		Retryable *bool `json:"retryable"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return false
	}
	return env.Retryable == nil || !*env.Retryable
}

// replay answers a kept answer.
func replay(c echo.Context, k *model.IdempotencyKey) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	h.Set(headerReplayed, "true")
	var env struct {
		ErrCode *string `json:"errCode"`
	}
	if json.Unmarshal([]byte(k.Answer), &env) == nil && env.ErrCode != nil {
		c.Set(ctxErrCode, *env.ErrCode)
	}
	c.Response().WriteHeader(k.Status)
	_, err := c.Response().Write([]byte(k.Answer))
	return err
}
