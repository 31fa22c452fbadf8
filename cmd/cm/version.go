package main

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func versionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print cm's version (cm node list shows each node's)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]string{"version": version, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH}
			switch output {
			case "", "table":
				fmt.Fprintf(cmd.OutOrStdout(), "cm %s (%s, %s)\n", v["version"], v["go"], v["platform"])
				return nil
			case "json", "yaml":
				raw, err := json.Marshal(v)
				if err != nil {
					return err
				}
				_, err = printRaw(cmd.OutOrStdout(), output, raw)
				return err
			default:
				return usagef("-o %q: use table, json or yaml", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: table, json or yaml")
	return cmd
}
