// Command floodgate runs Floodgate's own processes: the shed server (`floodgate shed-server`,
// its own Deployment) and drills (`floodgate drill FILE`).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/shed"
)

func main() {
	root := &cobra.Command{
		Use:           "floodgate",
		Short:         "Floodgate: rehearsed levers for saturation",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(shedServerCmd())
	root.AddCommand(drillCmd())
	if err := root.ExecuteContext(ctrl.SetupSignalHandler()); err != nil {
		fmt.Fprintln(os.Stderr, "floodgate:", err)
		os.Exit(1)
	}
}

func shedServerCmd() *cobra.Command {
	var addr, healthAddr, redirectHosts string
	var namespaces []string
	cmd := &cobra.Command{
		Use:   "shed-server",
		Short: "Answer shed traffic: the policy's status code, Retry-After and a short body",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(zap.New())
			return runShedServer(cmd.Context(), addr, healthAddr, shed.ParseRedirectHosts(redirectHosts), namespaces)
		},
	}
	cmd.Flags().StringVar(&addr, "listen", ":8080", "address that answers shed traffic")
	cmd.Flags().StringVar(&healthAddr, "health-listen", ":8081", "address of /healthz")
	cmd.Flags().StringSliceVar(&namespaces, "watch-namespaces", nil, "read policies and Ingresses only in these namespaces (default: every namespace)")
	cmd.Flags().StringVar(&redirectHosts, "shed-redirect-hosts", os.Getenv(shed.RedirectHostsEnv),
		"comma-separated hosts a shed answer may redirect to (*.example.com for a domain); empty: redirects off (default from $"+shed.RedirectHostsEnv+")")
	return cmd
}

func runShedServer(ctx context.Context, addr, healthAddr string, hosts shed.RedirectHosts, namespaces []string) error {
	server := shed.NewServer()
	health := http.NewServeMux()
	health.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return shed.SyncTable(ctx, ctrl.GetConfigOrDie(), manager.Scheme(), server, hosts, namespaces)
	})
	g.Go(func() error { return shed.Serve(ctx, shed.HTTPServer(addr, server)) })
	g.Go(func() error { return shed.Serve(ctx, shed.HTTPServer(healthAddr, health)) })
	return g.Wait()
}
