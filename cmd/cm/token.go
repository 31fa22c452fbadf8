package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/connector-manager/cm/server"
)

// tokenBytes is the entropy of a token: 32 bytes from crypto/rand, 43
// characters of URL-safe base64.
const tokenBytes = 32

func tokenCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "token",
		Short: "Make API tokens for --auth-file",
		Args:  cobra.NoArgs,
	}
	var name, role string
	newCmd := &cobra.Command{
		Use:   "new",
		Short: "Print a new random token and the line to add under tokens: in the auth file",
		Long: "new prints a fresh token on the first line and, on the second, the auth file entry that holds\n" +
			"only its SHA-256. Give the token to its user (or put it in a --node-token-file) and add the\n" +
			"line under `tokens:` in the --auth-file, then send cm serve SIGHUP. The token is not kept anywhere.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := server.ValidTokenName(name); err != nil {
				return fmt.Errorf("--name: %w", err)
			}
			r, err := server.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			tok, err := newToken()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, tok)
			fmt.Fprintf(out, "  - {name: %s, role: %s, sha256: %s}\n", name, r, server.HashToken(tok))
			return nil
		},
	}
	newCmd.Flags().StringVar(&name, "name", "", "who the token is for; the audit log names calls NAME@address")
	newCmd.Flags().StringVar(&role, "role", "", "viewer, operator, admin, or node (for --node-token-file)")
	_ = newCmd.MarkFlagRequired("name")
	_ = newCmd.MarkFlagRequired("role")
	root.AddCommand(newCmd)
	return root
}

// newToken is tokenBytes of crypto/rand in URL-safe base64 without padding.
func newToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
