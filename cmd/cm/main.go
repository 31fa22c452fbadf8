// Command cm is the connector task manager: cm serve runs a node, cm migrate
// prepares the store, and the other subcommands are the operator CLI.
package main

import (
	"errors"
	"fmt"
	"os"
	// Zone data in the binary: pullback's tz (server side) and the CLI's
	// --tz work on hosts and images without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := rootCmd().Execute(); err != nil {
		var e *exitError
		if !errors.As(err, &e) || !e.quiet {
			fmt.Fprintln(os.Stderr, "cm:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
	// quiet: the command already said everything on stdout.
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "cm",
		Short:         "cm runs and manages data-sync connector tasks",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), migrateCmd(), healthCmd(), tokenCmd(),
		taskCmd(), nodeCmd(), jobCmd(), paramsCmd(), versionCmd())
	// An unknown command, or a flag cm cannot parse, is a usage error:
	// exit 3 (docs/cli.md).
	root.Args = cobra.ArbitraryArgs
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return usagef("unknown command %q; see cm --help", args[0])
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	return root
}
