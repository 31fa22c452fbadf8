package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// apiCommand is the body of a CLI command: it calls cm with c and prints
// to w in format.
type apiCommand func(ctx context.Context, cmd *cobra.Command, c *client, w io.Writer, format string, args []string) error

// runAPI builds the client from o and runs fn, mapping its errors to the
// CLI's exit codes.
func runAPI(o *clientOpts, fn apiCommand) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := o.client()
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		format, err := o.format(w)
		if err != nil {
			return err
		}
		return cliError(fn(cmd.Context(), cmd, c, w, format, args))
	}
}

func taskCmd() *cobra.Command {
	o := &clientOpts{}
	cmd := groupCmd("task", "List, inspect and operate tasks (a task is named by its component or its full task name)",
		taskListCmd(o), taskDetailCmd(o), taskCreateCmd(o), taskStopCmd(o), taskPauseCmd(o), taskResumeCmd(o), taskUpdateCmd(o),
		taskPullbackCmd(o), taskMigrateCmd(o), taskDeleteCmd(o), taskOperationsCmd(o))
	addClientFlags(cmd, o)
	return cmd
}

// taskRow is the part of a task view the tables show.
type taskRow struct {
	TaskName     string `json:"taskName"`
	Component    string `json:"component"`
	Node         string `json:"node"`
	Version      int64  `json:"version"`
	State        string `json:"state"`
	DesiredState string `json:"desiredState"`
	Delay        *int64 `json:"delay"`
	Heartbeat    *time.Time
	Checkpoint   map[string]struct {
		TS        int64      `json:"ts"`
		Time      string     `json:"time"`
		Token     string     `json:"token"`
		Delay     int64      `json:"delay"`
		UpdatedAt *time.Time `json:"updatedAt"`
	} `json:"checkpoint"`
	Config       map[string]map[string]string `json:"config"`
	ErrorDetails []struct {
		Code    string `json:"code"`
		Level   string `json:"level"`
		Message string `json:"message"`
	} `json:"errorDetails"`
	Operation *struct {
		Op   string `json:"op"`
		Step string `json:"step"`
	} `json:"operation"`
}

func delayText(d *int64) string {
	if d == nil {
		return "-"
	}
	return fmtAge(time.Duration(*d) * time.Second)
}

func taskListCmd(o *clientOpts) *cobra.Command {
	var state, node, project string
	var page, size int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tasks (GET batchDetail); -o json prints {items, total}",
		Args:  usageArgs(cobra.NoArgs),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, _ *cobra.Command, c *client, w io.Writer, format string, _ []string) error {
		q := url.Values{}
		for k, v := range map[string]string{"state": state, "node": node, "project": project} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if page > 0 {
			q.Set("page", strconv.Itoa(page))
		}
		if size > 0 {
			q.Set("size", strconv.Itoa(size))
		}
		raw, err := c.call(ctx, "GET", "batchDetail", q, nil)
		if err != nil {
			return err
		}
		if done, err := printRaw(w, format, raw); done {
			return err
		}
		var p struct {
			Items []taskRow `json:"items"`
			Total int64     `json:"total"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		t := newTable(w, "COMPONENT", "VERSION", "NODE", "STATE", "DESIRED", "DELAY", "OPERATION")
		for _, it := range p.Items {
			op := "-"
			if it.Operation != nil {
				op = it.Operation.Op + ":" + it.Operation.Step
			}
			t.AppendRow([]any{it.Component, it.Version, it.Node, it.State, it.DesiredState, delayText(it.Delay), op})
		}
		t.Render()
		fmt.Fprintf(w, "%d of %d task(s)\n", len(p.Items), p.Total)
		return nil
	})
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only tasks in this state (RUNNING, STOPPED, EXCEPTION, ...; DELETED lists history)")
	f.StringVar(&node, "node", "", "only tasks of this node (IP-PORT)")
	f.StringVar(&project, "project", "", "only tasks of this project")
	f.IntVar(&page, "page", 0, "page, from 1")
	f.IntVar(&size, "size", 0, "tasks per page (server default 50, at most 500)")
	return cmd
}

func taskDetailCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "detail NAME",
		Short: "Show a task (GET detail): state, config (secrets masked), checkpoint per subtopic, errors",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, _ *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		raw, err := c.call(ctx, "GET", "detail", url.Values{"taskName": {args[0]}}, nil)
		if err != nil {
			return err
		}
		if done, err := printRaw(w, format, raw); done {
			return err
		}
		var d taskRow
		if err := json.Unmarshal(raw, &d); err != nil {
			return err
		}
		fmt.Fprintf(w, "Task:      %s\nState:     %s (desired %s)\nNode:      %s\nDelay:     %s\nHeartbeat: %s\n",
			d.TaskName, d.State, d.DesiredState, d.Node, delayText(d.Delay), fmtTime(d.Heartbeat))
		if d.Operation != nil {
			fmt.Fprintf(w, "Operation: %s, step %s\n", d.Operation.Op, d.Operation.Step)
		}
		fmt.Fprintln(w)
		t := newTable(w, "SUBTOPIC", "CHECKPOINT (UTC)", "TS", "DELAY", "TOKEN")
		for _, s := range sortedKeys(d.Checkpoint) {
			cp := d.Checkpoint[s]
			t.AppendRow([]any{s, time.Unix(cp.TS, 0).UTC().Format(time.DateTime), cp.TS, fmtAge(time.Duration(cp.Delay) * time.Second), cp.Token})
		}
		t.Render()
		fmt.Fprintln(w)
		t = newTable(w, "CONFIG", "VALUE")
		for _, scope := range sortedKeys(d.Config) {
			for _, k := range sortedKeys(d.Config[scope]) {
				t.AppendRow([]any{scope + "." + k, d.Config[scope][k]})
			}
		}
		t.Render()
		if len(d.ErrorDetails) > 0 {
			fmt.Fprintln(w)
			t = newTable(w, "LEVEL", "CODE", "MESSAGE")
			for _, e := range d.ErrorDetails {
				t.AppendRow([]any{e.Level, e.Code, e.Message})
			}
			t.Render()
		}
		return nil
	})
	return cmd
}

// printName prints the task name a write answered.
func printName(w io.Writer, format, verb string, raw json.RawMessage) error {
	if done, err := printRaw(w, format, raw); done {
		return err
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: %s\n", verb, name)
	return nil
}

// readConfig reads a config {"scope": {"key": "value"}} from a JSON or
// YAML file ("-" is stdin) and applies --set scope.key=value on top.
func readConfig(cmd *cobra.Command, file string, sets []string) (map[string]map[string]string, error) {
	cfg := map[string]map[string]string{}
	if file != "" {
		var b []byte
		var err error
		if file == "-" {
			b, err = io.ReadAll(cmd.InOrStdin())
		} else {
			b, err = os.ReadFile(file)
		}
		if err != nil {
			return nil, usagef("--config: %v", err)
		}
		// YAML is a superset of JSON.
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			return nil, usagef("--config %s: not a {scope: {key: value}} object of strings: %v", file, err)
		}
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		scope, key, ok2 := strings.Cut(k, ".")
		if !ok || !ok2 || scope == "" || key == "" {
			return nil, usagef("--set %q: want scope.key=value", s)
		}
		if cfg[scope] == nil {
			cfg[scope] = map[string]string{}
		}
		cfg[scope][key] = v
	}
	return cfg, nil
}

func taskCreateCmd(o *clientOpts) *cobra.Command {
	var file, node string
	var sets []string
	var noStart bool
	cmd := &cobra.Command{
		Use:   "create COMPONENT",
		Short: "Create a task (POST create) from --config FILE and --set scope.key=value",
		Example: `  cm task create p_demo-incr_trans-1-0 --set source.type=file --set source.path=/data/in.jsonl \
      --set sink.type=file --set sink.path=/data/out.jsonl`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, cmd *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		cfg, err := readConfig(cmd, file, sets)
		if err != nil {
			return err
		}
		body := map[string]any{"component": args[0], "config": cfg}
		if node != "" {
			body["node"] = node
		}
		if noStart {
			body["start"] = false
		}
		raw, err := c.call(ctx, "POST", "create", nil, body)
		if err != nil {
			return err
		}
		return printName(w, format, "created", raw)
	})
	f := cmd.Flags()
	f.StringVarP(&file, "config", "f", "", `config file, JSON or YAML {"scope": {"key": "value"}}; - reads stdin`)
	f.StringArrayVar(&sets, "set", nil, "scope.key=value, repeatable; applied over --config")
	f.StringVar(&node, "node", "", "node to run it (IP-PORT; default the node called)")
	f.BoolVar(&noStart, "no-start", false, "create it STOPPED")
	return cmd
}

func taskStopCmd(o *clientOpts) *cobra.Command {
	return waitingCallCmd(o, "stop", "Stop a task (POST stop); waits until its last checkpoint is durable", "stopped")
}

func taskPauseCmd(o *clientOpts) *cobra.Command {
	return waitingCallCmd(o, "pause", "Pause a task (POST pause); waits until its runner holds still with its checkpoint durable", "paused")
}

// waitingCallCmd is a command NAME that POSTs op for the task, waiting as
// --timeout says, and prints the task name the API answered after done.
func waitingCallCmd(o *clientOpts, op, short, done string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   op + " NAME",
		Short: short,
		Args:  usageArgs(cobra.ExactArgs(1)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, _ *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		raw, err := c.call(ctx, "POST", op, c.waitParams(url.Values{"taskName": {args[0]}}), nil)
		if err != nil {
			return err
		}
		return printName(w, format, done, raw)
	})
	return cmd
}

func taskResumeCmd(o *clientOpts) *cobra.Command {
	var pullback, restart, force, skipDDL bool
	cmd := &cobra.Command{
		Use:   "resume NAME",
		Short: "Resume a task (POST resume); --pullback, --restart and --skip-ddl as the API's flags",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, _ *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		q := url.Values{"taskName": {args[0]}}
		for k, v := range map[string]bool{"pullBackFlag": pullback, "restartFlag": restart, "force": force, "skipDdl": skipDDL} {
			if v {
				q.Set(k, "true")
			}
		}
		raw, err := c.call(ctx, "POST", "resume", c.waitParams(q), nil)
		if err != nil {
			return err
		}
		return printName(w, format, "resumed", raw)
	})
	f := cmd.Flags()
	f.BoolVar(&pullback, "pullback", false, "pullBackFlag: start a new incarnation from the configured source.checkpoint (incr_trans)")
	f.BoolVar(&restart, "restart", false, "restartFlag: rerun a full_trans from the beginning")
	f.BoolVar(&force, "force", false, "with --pullback: allow a checkpoint later than the task's progress")
	f.BoolVar(&skipDDL, "skip-ddl", false, "skipDdl: continue after the statement the source stopped at (docs/runbooks.md)")
	return cmd
}

func taskUpdateCmd(o *clientOpts) *cobra.Command {
	var file string
	var sets, deletes []string
	cmd := &cobra.Command{
		Use:     "update NAME",
		Short:   "Change a STOPPED or EXCEPTION task's config (POST update): --delete scope.key first, then --set/--config",
		Example: `  cm task update p_demo-incr_trans-1-0 --delete source.checkpoint --set 'source.checkpoint={"src.jsonl":"1676286000"}'`,
		Args:    usageArgs(cobra.ExactArgs(1)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, cmd *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		cfg, err := readConfig(cmd, file, sets)
		if err != nil {
			return err
		}
		if len(cfg) == 0 && len(deletes) == 0 {
			return usagef("nothing to update: give --set, --config or --delete")
		}
		q := url.Values{"taskName": {args[0]}}
		if len(deletes) > 0 {
			q.Set("deleteParams", strings.Join(deletes, ","))
		}
		var body any
		if len(cfg) > 0 {
			body = cfg
		}
		raw, err := c.call(ctx, "POST", "update", q, body)
		if err != nil {
			return err
		}
		return printName(w, format, "updated", raw)
	})
	f := cmd.Flags()
	f.StringVarP(&file, "config", "f", "", `config file to merge, JSON or YAML {"scope": {"key": "value"}}; - reads stdin`)
	f.StringArrayVar(&sets, "set", nil, "scope.key=value to merge, repeatable")
	f.StringArrayVar(&deletes, "delete", nil, "scope.key to delete before merging, repeatable")
	return cmd
}

func taskMigrateCmd(o *clientOpts) *cobra.Command {
	var ip, node string
	var yes bool
	cmd := &cobra.Command{
		Use:   "migrate NAME",
		Short: "Move a task to another node (POST migrate): --ip, --node, or the least loaded other live node",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, cmd *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		where := "the least loaded other live node"
		switch {
		case node != "":
			where = "node " + node
		case ip != "":
			where = "a live node on " + ip
		}
		if err := confirm(cmd, yes, fmt.Sprintf("migrate %s to %s", args[0], where)); err != nil {
			return err
		}
		q := url.Values{"taskName": {args[0]}}
		if ip != "" {
			q.Set("ip", ip)
		}
		if node != "" {
			q.Set("node", node)
		}
		raw, err := c.call(ctx, "POST", "migrate", c.waitParams(q), nil)
		if err != nil {
			return err
		}
		return printName(w, format, "migrated", raw)
	})
	f := cmd.Flags()
	f.StringVar(&ip, "ip", "", "a live node on this IP")
	f.StringVar(&node, "node", "", "this exact node (IP-PORT)")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func taskDeleteCmd(o *clientOpts) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a task (POST delete): stop it and keep it as history in state DELETED",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, cmd *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		if err := confirm(cmd, yes, "delete "+args[0]); err != nil {
			return err
		}
		raw, err := c.call(ctx, "POST", "delete", c.waitParams(url.Values{"taskName": {args[0]}}), nil)
		if err != nil {
			return err
		}
		return printName(w, format, "deleted", raw)
	})
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func taskOperationsCmd(o *clientOpts) *cobra.Command {
	var since string
	var limit int
	cmd := &cobra.Command{
		Use:   "operations [NAME]",
		Short: "The audit log (GET operations), newest first; NAME selects a component's whole history",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, _ *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		q := url.Values{}
		if len(args) == 1 {
			q.Set("taskName", args[0])
		}
		if since != "" {
			if d, err := time.ParseDuration(since); err == nil {
				since = strconv.FormatInt(time.Now().Add(-d).Unix(), 10)
			}
			q.Set("since", since)
		}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		raw, err := c.call(ctx, "GET", "operations", q, nil)
		if err != nil {
			return err
		}
		if done, err := printRaw(w, format, raw); done {
			return err
		}
		var rows []struct {
			ID        int64     `json:"id"`
			Time      time.Time `json:"time"`
			Actor     string    `json:"actor"`
			Operation string    `json:"operation"`
			TaskAfter string    `json:"taskAfter"`
			Before    string    `json:"stateBefore"`
			After     string    `json:"stateAfter"`
			Result    string    `json:"result"`
			ErrCode   string    `json:"errCode"`
			Calls     int64     `json:"calls"`
		}
		if err := json.Unmarshal(raw, &rows); err != nil {
			return err
		}
		t := newTable(w, "ID", "TIME (UTC)", "OPERATION", "TASK", "STATE", "RESULT", "ACTOR")
		for _, r := range rows {
			res := r.Result
			if r.ErrCode != "" {
				res += " " + r.ErrCode
			}
			if r.Calls > 1 {
				res += fmt.Sprintf(" x%d", r.Calls)
			}
			st := r.Before
			if r.After != "" && r.After != r.Before {
				st += "->" + r.After
			}
			t.AppendRow([]any{r.ID, r.Time.UTC().Format(time.DateTime), r.Operation, r.TaskAfter, st, res, r.Actor})
		}
		t.Render()
		return nil
	})
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only rows since: RFC 3339, unix seconds, or a duration ago like 1h")
	f.IntVar(&limit, "limit", 0, "at most this many rows (server default 100, at most 1000)")
	return cmd
}

// parseZone reads --tz: an IANA name or ±HH:MM; "" is nil.
func parseZone(tz string) (*time.Location, error) {
	if tz == "" {
		return nil, nil
	}
	if len(tz) == 6 && (tz[0] == '+' || tz[0] == '-') && tz[3] == ':' {
		h, err1 := strconv.Atoi(tz[1:3])
		m, err2 := strconv.Atoi(tz[4:6])
		if err1 == nil && err2 == nil && h <= 14 && m < 60 {
			off := h*3600 + m*60
			if tz[0] == '-' {
				off = -off
			}
			return time.FixedZone(tz, off), nil
		}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return nil, fmt.Errorf("--tz %q is not an IANA zone name (Asia/Shanghai) or an offset like +08:00", tz)
	}
	return loc, nil
}

// pullbackTarget is where --to or --ago resolves: the unix seconds to send
// and the zone to show them in besides UTC.
type pullbackTarget struct {
	unix int64
	// raw is sent instead of unix when the operator gave digits: the
	// server judges their unit (CHECKPOINT_TIME_UNIT).
	raw  string
	zone *time.Location
}

// resolvePullbackTime reads --to (unix seconds, RFC 3339 with an offset,
// or "YYYY-MM-DD HH:MM:SS" in --tz, default UTC) or --ago (a duration
// before now, e.g. 15m or 2d).
func resolvePullbackTime(to, ago, tz string, now time.Time) (pullbackTarget, error) {
	zone, err := parseZone(tz)
	if err != nil {
		return pullbackTarget{}, err
	}
	var t pullbackTarget
	switch {
	case (to == "") == (ago == ""):
		return t, fmt.Errorf("give exactly one of --to and --ago")
	case ago != "":
		d, err := parseDays(ago)
		if err != nil || d <= 0 {
			return t, fmt.Errorf("--ago %q is not a positive duration like 15m, 2h or 3d", ago)
		}
		t.unix = now.Add(-d).Unix()
	case strings.Trim(to, "0123456789") == "":
		n, err := strconv.ParseInt(to, 10, 64)
		if err != nil {
			return t, fmt.Errorf("--to %q: too many digits for unix seconds", to)
		}
		t.unix, t.raw = n, to
	default:
		if at, err := time.Parse(time.RFC3339, to); err == nil {
			t.unix = at.Unix()
			if zone == nil {
				zone = at.Location()
			}
			break
		}
		in := zone
		if in == nil {
			in = time.UTC
		}
		var at time.Time
		for _, layout := range []string{time.DateTime, "2006-01-02T15:04:05", "2006-01-02 15:04", time.DateOnly} {
			if at, err = time.ParseInLocation(layout, to, in); err == nil {
				break
			}
		}
		if err != nil {
			return t, fmt.Errorf(`--to %q: want unix seconds, RFC 3339 with an offset (2023-02-13T19:00:00+08:00) or "2023-02-13 19:00:00" with --tz`, to)
		}
		t.unix = at.Unix()
	}
	if zone == nil {
		zone = time.Local
	}
	t.zone = zone
	return t, nil
}

// parseDays is time.ParseDuration that also takes whole days ("3d").
func parseDays(v string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 || n > 36500 {
			return 0, fmt.Errorf("%q is not a number of days", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

func taskPullbackCmd(o *clientOpts) *cobra.Command {
	var to, ago, tz, subtopic string
	var force, yes, dryRun bool
	cmd := &cobra.Command{
		Use:   "pullback NAME (--to TIME [--tz ZONE] | --ago DURATION)",
		Short: "Rewind a task to a time and replay from there (POST pullback), after showing what will be replayed",
		Example: `  cm task pullback p_demo-incr_trans-1-0 --to "2023-02-13 19:00:00" --tz Asia/Shanghai
  cm task pullback p_demo-incr_trans-1-0 --to 2023-02-13T19:00:00+08:00
  cm task pullback p_demo-incr_trans-1-0 --to 1676286000 --yes
  cm task pullback p_demo-incr_trans-1-0 --ago 15m`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, cmd *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		target, err := resolvePullbackTime(to, ago, tz, time.Now())
		if err != nil {
			return usageError(err)
		}
		raw, err := c.call(ctx, "GET", "detail", url.Values{"taskName": {args[0]}}, nil)
		if err != nil {
			return err
		}
		var d taskRow
		if err := json.Unmarshal(raw, &d); err != nil {
			return err
		}
		plan := cmd.ErrOrStderr()
		at := time.Unix(target.unix, 0)
		fmt.Fprintf(plan, "Pullback of %s (%s, version %d)\n", d.TaskName, d.State, d.Version)
		fmt.Fprintf(plan, "  to %s UTC (unix %d)\n", at.UTC().Format(time.DateTime), target.unix)
		if abbr, off := at.In(target.zone).Zone(); off != 0 || abbr != "UTC" {
			label := target.zone.String()
			if target.zone == time.Local {
				label = "local time (" + abbr + ")"
			}
			fmt.Fprintf(plan, "     %s %s\n", at.In(target.zone).Format("2006-01-02 15:04:05 -07:00"), label)
		}
		subs := sortedKeys(d.Checkpoint)
		if subtopic != "" {
			subs = []string{subtopic}
		}
		if len(subs) == 0 {
			fmt.Fprintln(plan, "  the task has no durable progress yet: cm judges the target against its configured checkpoint or the source's start")
		}
		for _, s := range subs {
			cp, ok := d.Checkpoint[s]
			switch {
			case !ok:
				fmt.Fprintf(plan, "  %s: no durable progress; cm judges the target against its configured checkpoint or the source's start\n", s)
			case cp.TS >= target.unix:
				fmt.Fprintf(plan, "  %s: checkpoint %s UTC -> replays %s of data (from the target to the checkpoint), then continues\n",
					s, time.Unix(cp.TS, 0).UTC().Format(time.DateTime), fmtAge(time.Duration(cp.TS-target.unix)*time.Second))
			default:
				verdict := "cm refuses it (CHECKPOINT_FORWARD) unless --force"
				if force {
					verdict = "--force: that data is never copied"
				}
				fmt.Fprintf(plan, "  %s: checkpoint %s UTC is BEFORE the target: skips %s of data; %s\n",
					s, time.Unix(cp.TS, 0).UTC().Format(time.DateTime), fmtAge(time.Duration(target.unix-cp.TS)*time.Second), verdict)
			}
		}
		if dryRun {
			return nil
		}
		if err := confirm(cmd, yes, "pull back "+d.TaskName); err != nil {
			return err
		}
		ts := strconv.FormatInt(target.unix, 10)
		if target.raw != "" {
			ts = target.raw
		}
		q := url.Values{"taskName": {args[0]}, "timestamp": {ts}}
		if subtopic != "" {
			q.Set("subtopic", subtopic)
		}
		if force {
			q.Set("force", "true")
		}
		raw, err = c.call(ctx, "POST", "pullback", c.waitParams(q), nil)
		if err != nil {
			return err
		}
		return printName(w, format, "pulled back, now", raw)
	})
	f := cmd.Flags()
	f.StringVar(&to, "to", "", `the time: unix seconds, RFC 3339 with an offset, or "YYYY-MM-DD HH:MM:SS" read in --tz`)
	f.StringVar(&ago, "ago", "", "the time as a duration before now: 15m, 2h, 3d")
	f.StringVar(&tz, "tz", "", "zone of a --to without offset (IANA name or ±HH:MM; default UTC), and the zone the plan is shown in besides UTC (default local)")
	f.StringVar(&subtopic, "subtopic", "", "rewind only this subtopic (default all)")
	f.BoolVar(&force, "force", false, "allow a target later than the task's progress (skips data)")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	f.BoolVar(&dryRun, "dry-run", false, "show the plan and do nothing")
	return cmd
}
