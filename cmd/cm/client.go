package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// Exit codes of the operator CLI (docs/cli.md). cm health has its own.
const (
	exitDone        = 0
	exitRefused     = 1 // cm answered with an error envelope
	exitUnreachable = 2 // no answer from cm: connection refused, timeout, not a cm
	exitUsage       = 3 // bad flags or arguments, or a confirmation that cannot be asked
)

const v2Path = "/connector/task/v2/"

// usageError makes err exit with code 3.
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// usagef is usageError of a formatted message.
func usagef(format string, a ...any) error { return usageError(fmt.Errorf(format, a...)) }

// usageArgs wraps a cobra argument check so that a wrong number of
// arguments exits 3, not 1.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError(err)
		}
		return nil
	}
}

// groupCmd is a command that only holds subcommands: run alone or with an
// unknown subcommand it is a usage error.
func groupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q; see %s --help", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return usagef("%s needs a subcommand; see %s --help", cmd.CommandPath(), cmd.CommandPath())
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}

// clientOpts are the flags every API command shares.
type clientOpts struct {
	server  string
	token   string
	output  string
	timeout time.Duration
}

// addClientFlags adds --server, --token, -o and --timeout to cmd and its
// subcommands, defaulting from CM_SERVER and CM_TOKEN.
func addClientFlags(cmd *cobra.Command, o *clientOpts) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.server, "server", envOr("CM_SERVER", "http://127.0.0.1:8088"), "base URL of any cm node (env CM_SERVER)")
	f.StringVar(&o.token, "token", "", "bearer token (default env CM_TOKEN)")
	f.StringVarP(&o.output, "output", "o", "", "output format: table, json or yaml (default table on a terminal, json otherwise)")
	f.DurationVar(&o.timeout, "timeout", 0, "how long cm may wait for a task to converge (stop, resume, pullback, migrate, delete; server default 30s)")
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// apiError is an error envelope: cm refused the call.
type apiError struct {
	Status    int
	Code      string
	Msg       string
	Retryable bool
	Detail    json.RawMessage
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%s: %s", e.Code, e.Msg)
	if e.Retryable {
		s += " (retryable)"
	}
	return s
}

// client calls one cm node's API.
type client struct {
	base  string
	token string
	wait  time.Duration // the timeout parameter of converging calls; 0 is the server's default
	http  *http.Client
}

func (o *clientOpts) client() (*client, error) {
	u, err := url.Parse(o.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server %q is not an http(s) URL", o.server)
	}
	if o.timeout < 0 || o.timeout > 10*time.Minute {
		return nil, usagef("--timeout %s: at most 10m", o.timeout)
	}
	token := o.token
	if token == "" {
		token = strings.TrimSpace(os.Getenv("CM_TOKEN"))
	}
	// The HTTP exchange outlasts the longest wait cm may take.
	limit := 30*time.Second + 30*time.Second
	if o.timeout > 0 {
		limit = o.timeout + 30*time.Second
	}
	return &client{base: strings.TrimRight(o.server, "/"), token: token, wait: o.timeout, http: &http.Client{Timeout: limit}}, nil
}

// call sends one request and returns the envelope's result. A transport
// failure or an answer that is not an envelope exits 2; an error envelope
// is an *apiError (exit 1).
func (c *client) call(ctx context.Context, method, route string, q url.Values, body any) (json.RawMessage, error) {
	u := c.base + v2Path + route
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, usageError(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &exitError{code: exitUnreachable, err: fmt.Errorf("cm unreachable at %s: %w", c.base, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &exitError{code: exitUnreachable, err: fmt.Errorf("reading the answer of %s: %w", c.base, err)}
	}
	var env struct {
		ErrCode     *string         `json:"errCode"`
		ErrMsg      *string         `json:"errMsg"`
		ErrorDetail json.RawMessage `json:"errorDetail"`
		IsSuccess   bool            `json:"isSuccess"`
		Result      json.RawMessage `json:"result"`
		Retryable   *bool           `json:"retryable"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || (!env.IsSuccess && env.ErrCode == nil) {
		return nil, &exitError{code: exitUnreachable, err: fmt.Errorf("%s answered HTTP %d, not a cm envelope: %.200s", c.base, resp.StatusCode, raw)}
	}
	if !env.IsSuccess {
		e := &apiError{Status: resp.StatusCode, Code: *env.ErrCode, Detail: env.ErrorDetail}
		if env.ErrMsg != nil {
			e.Msg = *env.ErrMsg
		}
		if env.Retryable != nil {
			e.Retryable = *env.Retryable
		}
		return nil, e
	}
	return env.Result, nil
}

// waitParams adds the timeout parameter when --timeout was given.
func (c *client) waitParams(q url.Values) url.Values {
	if c.wait > 0 {
		q.Set("timeout", fmt.Sprintf("%ds", int64(c.wait.Seconds())))
	}
	return q
}

// cliError turns an error of a CLI command into its exit status: an
// *apiError exits 1 and prints errCode and errMsg (and the current name of
// a superseded task).
func cliError(err error) error {
	var e *apiError
	if errors.As(err, &e) {
		msg := e.Error()
		var d struct {
			Current   string `json:"currentTaskName"`
			RequestID string `json:"requestId"`
		}
		if json.Unmarshal(e.Detail, &d) == nil {
			if d.Current != "" {
				msg += "; current task: " + d.Current
			}
			if d.RequestID != "" {
				msg += " [request " + d.RequestID + "]"
			}
		}
		return &exitError{code: exitRefused, err: errors.New(msg)}
	}
	return err
}

// format is the output format: -o, else table on a terminal and json
// otherwise.
func (o *clientOpts) format(w io.Writer) (string, error) {
	switch o.output {
	case "table", "json", "yaml":
		return o.output, nil
	case "":
		if isTerminal(w) {
			return "table", nil
		}
		return "json", nil
	default:
		return "", usagef("-o %q: use table, json or yaml", o.output)
	}
}

// isTerminal says whether f is an *os.File on a character device.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// printRaw prints an API result as JSON (exactly as the API sent it,
// indented) or YAML; it reports false for table, which the caller draws.
func printRaw(w io.Writer, format string, raw json.RawMessage) (bool, error) {
	switch format {
	case "json":
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return true, err
		}
		b.WriteByte('\n')
		_, err := w.Write(b.Bytes())
		return true, err
	case "yaml":
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return true, err
		}
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(yamlNumbers(v)); err != nil {
			return true, err
		}
		return true, enc.Close()
	}
	return false, nil
}

// yamlNumbers replaces json.Number (which YAML would quote) by int64 or
// float64.
func yamlNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = yamlNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = yamlNumbers(e)
		}
	}
	return v
}

// newTable is a table writing to w in the plain style.
func newTable(w io.Writer, header ...any) table.Writer {
	t := table.NewWriter()
	t.SetOutputMirror(w)
	t.SetStyle(table.StyleLight)
	t.Style().Options.DrawBorder = false
	t.Style().Options.SeparateColumns = false
	t.Style().Options.SeparateHeader = true
	t.AppendHeader(table.Row(header))
	return t
}

// confirm asks on the terminal (stdin, the prompt on stderr) whether to go
// on, unless yes. Without a terminal and without --yes it refuses (exit 3):
// a script must say --yes.
func confirm(cmd *cobra.Command, yes bool, question string) error {
	if yes {
		return nil
	}
	in := cmd.InOrStdin()
	if !isTerminal(in) {
		return usagef("refusing to %s without confirmation: stdin is not a terminal to ask on; pass --yes", question)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s? [y/N] ", upperFirst(question))
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return &exitError{code: exitUsage, err: errors.New("not confirmed; nothing done")}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// sortedKeys are m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// fmtTime prints a time in UTC, or "-" for none.
func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// fmtAge prints how long ago t was, rounded: 12s, 3m4s, 2d4h.
func fmtAge(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	default:
		days := int64(d / (24 * time.Hour))
		return fmt.Sprintf("%dd%dh", days, int64((d%(24*time.Hour))/time.Hour))
	}
}
