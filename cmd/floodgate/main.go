// Command floodgate rehearses levers: `floodgate drill FILE` runs a runbook on an embedded
// control plane. (The shed server is its own binary, cmd/shed-server: it never links envtest.)
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"floodgate.dev/floodgate/internal/version"
)

func main() {
	root := &cobra.Command{
		Use:           "floodgate",
		Short:         "Floodgate: rehearsed levers for saturation",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(drillCmd(), version.Command("floodgate"))
	if err := root.ExecuteContext(ctrl.SetupSignalHandler()); err != nil {
		fmt.Fprintln(os.Stderr, "floodgate:", err)
		os.Exit(1)
	}
}
