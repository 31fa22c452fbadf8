package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"

	"github.com/spf13/cobra"
)

func paramsCmd() *cobra.Command {
	o := &clientOpts{}
	cmd := groupCmd("params", "System parameters", paramsGetCmd(o), paramsSetCmd(o))
	addClientFlags(cmd, o)
	return cmd
}

type paramView struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	Default     string `json:"default"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
}

func paramsGetCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get [KEY]",
		Short: "Show system parameters with their defaults (GET params); KEY shows one",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, _ *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		raw, err := c.call(ctx, "GET", "params", nil, nil)
		if err != nil {
			return err
		}
		if len(args) == 1 {
			var all []json.RawMessage
			if err := json.Unmarshal(raw, &all); err != nil {
				return err
			}
			raw = nil
			for _, p := range all {
				var v paramView
				if json.Unmarshal(p, &v) == nil && v.Key == args[0] {
					raw = p
				}
			}
			if raw == nil {
				// The server's word for a key it does not know, said by the CLI.
				return &apiError{Code: "INVALID_ARGUMENT", Msg: fmt.Sprintf("unknown parameter %q; cm params get lists them", args[0])}
			}
			raw = json.RawMessage("[" + string(raw) + "]")
			if format != "table" {
				raw = raw[1 : len(raw)-1]
			}
		}
		if done, err := printRaw(w, format, raw); done {
			return err
		}
		var ps []paramView
		if err := json.Unmarshal(raw, &ps); err != nil {
			return err
		}
		t := newTable(w, "KEY", "VALUE", "DEFAULT", "KIND", "DESCRIPTION")
		for _, p := range ps {
			t.AppendRow([]any{p.Key, p.Value, p.Default, p.Kind, p.Description})
		}
		t.Render()
		return nil
	})
	return cmd
}

func paramsSetCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Set a system parameter (POST params/update); validated, audited, in effect without restart",
		Args:  usageArgs(cobra.ExactArgs(2)),
	}
	cmd.RunE = runAPI(o, func(ctx context.Context, _ *cobra.Command, c *client, w io.Writer, format string, args []string) error {
		raw, err := c.call(ctx, "POST", "params/update", url.Values{"key": {args[0]}, "value": {args[1]}}, nil)
		if err != nil {
			return err
		}
		if done, err := printRaw(w, format, raw); done {
			return err
		}
		fmt.Fprintf(w, "set %s = %s\n", args[0], args[1])
		return nil
	})
	return cmd
}
