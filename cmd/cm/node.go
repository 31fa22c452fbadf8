package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func nodeCmd() *cobra.Command {
	o := &clientOpts{}
	cmd := groupCmd("node", "The cluster's nodes", nodeListCmd(o))
	addClientFlags(cmd, o)
	return cmd
}

func nodeListCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List nodes (GET nodes): the leader, each node's state (alive, suspect, dead), load and tasks",
		Args:  usageArgs(cobra.NoArgs),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, _ *cobra.Command, c *client, w io.Writer, format string, _ []string) error {
		raw, err := c.call(ctx, "GET", "nodes", nil, nil)
		if err != nil {
			return err
		}
		if done, err := printRaw(w, format, raw); done {
			return err
		}
		var v struct {
			Leader       string     `json:"leader"`
			LeaseExpires *time.Time `json:"leaseExpires"`
			Nodes        []struct {
				ID      string           `json:"id"`
				Addr    string           `json:"addr"`
				Version string           `json:"version"`
				State   string           `json:"state"`
				Leader  bool             `json:"leader"`
				SeenAt  *time.Time       `json:"seenAt"`
				Load    map[string]int64 `json:"load"`
				Total   int64            `json:"total"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		t := newTable(w, "NODE", "STATE", "LEADER", "VERSION", "TASKS", "LOAD", "SEEN (UTC)")
		for _, n := range v.Nodes {
			load := make([]string, 0, len(n.Load))
			for st, k := range n.Load {
				load = append(load, fmt.Sprintf("%s=%d", st, k))
			}
			sort.Strings(load)
			leader := ""
			if n.Leader {
				leader = "yes"
			}
			t.AppendRow([]any{n.ID, n.State, leader, n.Version, n.Total, strings.Join(load, " "), fmtTime(n.SeenAt)})
		}
		t.Render()
		fmt.Fprintf(w, "leader %s, lease until %s\n", orDash(v.Leader), fmtTime(v.LeaseExpires))
		return nil
	})
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
