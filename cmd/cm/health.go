package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/connector-manager/cm/taskmgr/params"
)

// Exit codes of cm health, for cron and monitoring scripts (Nagios style).
const (
	healthOK       = 0
	healthWarning  = 1
	healthCritical = 2
	healthUnknown  = 3 // usage error, or an answer that is not a health report
)

// healthReport is the part of the health answer the CLI reads.
type healthReport struct {
	Status   string `json:"status"`
	Tasks    int    `json:"tasks"`
	Problems []struct {
		Severity string `json:"severity"`
		Code     string `json:"code"`
		Task     string `json:"task"`
		Node     string `json:"node"`
		Message  string `json:"message"`
	} `json:"problems"`
}

func healthCmd() *cobra.Command {
	var server, project, node, maxDelay, tokenFile, token string
	var timeout time.Duration
	var minTasks int
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check task health: exit 0 healthy, 1 warning, 2 critical or cm unreachable, 3 usage or unknown",
		Long: "health asks a cm node for the health of the selected tasks and exits 0 when all are healthy,\n" +
			"1 on warnings (checkpoint delay over threshold, suspect node), 2 on critical problems\n" +
			"(EXCEPTION, stale heartbeat, dead node, fewer tasks than --min-tasks) or when cm cannot be\n" +
			"reached, and 3 on a usage error or an answer that is not a health report (UNKNOWN: a refused\n" +
			"token, a bad filter).",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &exitError{code: healthUnknown, err: fmt.Errorf("health takes no arguments, got %q", args)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxDelay != "" {
				if _, err := params.ParseDuration(maxDelay); err != nil {
					if n, nerr := strconv.ParseInt(maxDelay, 10, 64); nerr != nil || n < 0 {
						return &exitError{code: healthUnknown, err: fmt.Errorf("--max-delay %q is not seconds or a duration like 5m or 2d", maxDelay)}
					}
				}
			}
			if minTasks < 0 {
				return &exitError{code: healthUnknown, err: fmt.Errorf("--min-tasks %d: not a count", minTasks)}
			}
			q := url.Values{}
			for k, v := range map[string]string{"project": project, "node": node, "maxDelay": maxDelay} {
				if v != "" {
					q.Set(k, v)
				}
			}
			u := strings.TrimRight(server, "/") + "/connector/task/v2/health"
			if len(q) > 0 {
				u += "?" + q.Encode()
			}
			if token == "" {
				var err error
				if token, err = cliToken(tokenFile, os.Getenv); err != nil {
					return &exitError{code: healthUnknown, err: err}
				}
			}
			rep, err := fetchHealth(cmd.Context(), u, token, timeout)
			out := cmd.OutOrStdout()
			if err != nil {
				var unknown *healthAnswerError
				if errors.As(err, &unknown) {
					fmt.Fprintf(out, "UNKNOWN: %v\n", err)
					return &exitError{code: healthUnknown, err: err, quiet: true}
				}
				fmt.Fprintf(out, "CRITICAL: %v\n", err)
				return &exitError{code: healthCritical, err: err, quiet: true}
			}
			if rep.Tasks < minTasks {
				fmt.Fprintf(out, "CRITICAL: %d task(s) match, --min-tasks is %d (a mistyped --project or --node?)\n", rep.Tasks, minTasks)
				return &exitError{code: healthCritical, err: errors.New("too few tasks"), quiet: true}
			}
			fmt.Fprintf(out, "%s: %d task(s), %d problem(s)\n", strings.ToUpper(rep.Status), rep.Tasks, len(rep.Problems))
			for _, p := range rep.Problems {
				who := p.Task
				if who == "" {
					who = "node " + p.Node
				}
				fmt.Fprintf(out, "  %-8s %-22s %s: %s\n", p.Severity, p.Code, who, p.Message)
			}
			switch rep.Status {
			case "healthy":
				return nil
			case "warning":
				return &exitError{code: healthWarning, err: errors.New("tasks have warnings"), quiet: true}
			default:
				return &exitError{code: healthCritical, err: errors.New("tasks are critical"), quiet: true}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", envOr("CM_SERVER", "http://127.0.0.1:8088"), "base URL of any cm node (env CM_SERVER)")
	f.StringVar(&project, "project", "", "only tasks of this project")
	f.StringVar(&node, "node", "", "only tasks of this node (IP-PORT)")
	f.StringVar(&maxDelay, "max-delay", "", "delay over which a task warns, e.g. 5m (default: task.delay.threshold)")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	f.IntVar(&minTasks, "min-tasks", 0, "critical when fewer tasks than this match the filters")
	f.StringVar(&token, "token", "", "bearer token (any role); default --token-file, then env CM_TOKEN")
	f.StringVar(&tokenFile, "token-file", "", "file holding a bearer token (any role) for a node with --auth-file; default the token in env CM_TOKEN")
	return cmd
}

// cliToken is the bearer token a CLI command sends: the content of
// tokenFile when given, else $CM_TOKEN, else none.
func cliToken(tokenFile string, getenv func(string) string) (string, error) {
	if tokenFile == "" {
		return strings.TrimSpace(getenv("CM_TOKEN")), nil
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// fetchHealth reads the health report; 200 and 503 both carry one.
func fetchHealth(ctx context.Context, u, token string, timeout time.Duration) (*healthReport, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cm unreachable: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("cm unreachable: reading the answer: %w", err)
	}
	var env struct {
		ErrCode *string       `json:"errCode"`
		ErrMsg  *string       `json:"errMsg"`
		Result  *healthReport `json:"result"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("cm unreachable: answer %d is not a cm envelope", resp.StatusCode)
	}
	if (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable) || env.Result == nil {
		e := &healthAnswerError{status: resp.StatusCode}
		if env.ErrCode != nil {
			e.code = *env.ErrCode
		}
		if env.ErrMsg != nil {
			e.msg = *env.ErrMsg
		}
		if e.code == "" || resp.StatusCode >= 500 {
			// cm is there but cannot say (the store down, a proxy's 502).
			return nil, fmt.Errorf("cm answered %d %s: %s", resp.StatusCode, e.code, e.msg)
		}
		return nil, e
	}
	return env.Result, nil
}

// healthAnswerError is a refusal of the health call itself (a token
// refused, a filter cm does not take): the tasks' health is unknown.
type healthAnswerError struct {
	status    int
	code, msg string
}

func (e *healthAnswerError) Error() string {
	return fmt.Sprintf("cm answered %d %s: %s", e.status, e.code, e.msg)
}
