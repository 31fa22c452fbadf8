package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

func jobCmd() *cobra.Command {
	o := &clientOpts{}
	cmd := groupCmd("job", "The cluster-wide scheduled jobs", jobListCmd(o))
	addClientFlags(cmd, o)
	return cmd
}

func jobListCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List scheduled jobs (GET jobs): schedule, last run, duration and result",
		Args:  usageArgs(cobra.NoArgs),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, _ *cobra.Command, c *client, w io.Writer, format string, _ []string) error {
		raw, err := c.call(ctx, "GET", "jobs", nil, nil)
		if err != nil {
			return err
		}
		if done, err := printRaw(w, format, raw); done {
			return err
		}
		var v struct {
			Leader string `json:"leader"`
			Jobs   []struct {
				Name       string     `json:"name"`
				Schedule   string     `json:"schedule"`
				LastRun    *time.Time `json:"lastRun"`
				Node       string     `json:"node"`
				DurationMS int64      `json:"durationMs"`
				Result     string     `json:"result"`
				Summary    string     `json:"summary"`
				Error      string     `json:"error"`
				Runs       int64      `json:"runs"`
			} `json:"jobs"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		t := newTable(w, "JOB", "SCHEDULE", "LAST RUN (UTC)", "NODE", "DURATION", "RESULT", "RUNS", "SUMMARY")
		for _, j := range v.Jobs {
			sum := j.Summary
			if j.Error != "" {
				sum = j.Error
			}
			t.AppendRow([]any{j.Name, j.Schedule, fmtTime(j.LastRun), orDash(j.Node), (time.Duration(j.DurationMS) * time.Millisecond).String(), orDash(j.Result), j.Runs, sum})
		}
		t.Render()
		fmt.Fprintf(w, "leader %s\n", orDash(v.Leader))
		return nil
	})
	return cmd
}
