// Package version is the version stamped into Floodgate's binaries at build time
// (make release: -ldflags "-X floodgate.dev/floodgate/internal/version.Version=v0.1.0").
package version

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// Version is the release this binary was built as ("dev" when built without make release).
var Version = "dev"

// String says which build this is: "v0.1.0 (go1.26.8 linux/amd64)".
func String() string {
	return fmt.Sprintf("%s (%s %s/%s)", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Command is the `version` subcommand of a binary named name. It needs no cluster.
func Command(name string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version this binary was built as",
		Args:  cobra.NoArgs,
		// No cluster is needed: the root's pre-run (clients from a kubeconfig) is skipped.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", name, String())
			return err
		},
	}
}
