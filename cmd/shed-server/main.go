// Command shed-server answers shed traffic: the policy's status code, Retry-After and a short
// body, or a redirect the cluster allows. It runs as its own Deployment (never in the manager's
// pods, which the herd would take down) and links nothing but what it serves with.
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

	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/internal/shed"
)

func main() {
	cmd := shedServerCmd()
	if err := cmd.ExecuteContext(ctrl.SetupSignalHandler()); err != nil {
		fmt.Fprintln(os.Stderr, "shed-server:", err)
		os.Exit(1)
	}
}

func shedServerCmd() *cobra.Command {
	var addr, healthAddr, redirectHosts, probeKeyFile string
	var namespaces []string
	cmd := &cobra.Command{
		Use:   "shed-server",
		Args:  cobra.NoArgs,
		Short: "Answer shed traffic: the policy's status code, Retry-After and a short body",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(zap.New())
			key, err := shed.ReadProbeKey(probeKeyFile)
			if err != nil {
				return err
			}
			return runShedServer(cmd.Context(), addr, healthAddr, shed.ParseRedirectHosts(redirectHosts), namespaces, key)
		},
	}
	cmd.Flags().StringVar(&addr, "listen", ":8080", "address that answers shed traffic")
	cmd.Flags().StringVar(&healthAddr, "health-listen", ":8081", "address of /healthz and /metrics (floodgate_shed_responses_total)")
	cmd.Flags().StringSliceVar(&namespaces, "watch-namespaces", nil, "read policies and Ingresses only in these namespaces (default: every namespace)")
	cmd.Flags().StringVar(&probeKeyFile, "probe-key-file", "",
		"file holding the key the manager makes probe tokens with (the same Secret the manager mounts); empty: no request is recognised as a probe")
	cmd.Flags().StringVar(&redirectHosts, "shed-redirect-hosts", os.Getenv(shed.RedirectHostsEnv),
		"comma-separated hosts a shed answer may redirect to (*.example.com for a domain); empty: redirects off (default from $"+shed.RedirectHostsEnv+")")
	return cmd
}

func runShedServer(ctx context.Context, addr, healthAddr string, hosts shed.RedirectHosts, namespaces []string, probeKey []byte) error {
	server := shed.NewServer()
	server.ProbeKey = probeKey
	health := http.NewServeMux()
	health.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	health.Handle("/metrics", shed.MetricsHandler(server))

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return shed.SyncTable(ctx, ctrl.GetConfigOrDie(), scheme.New(), server, shed.SyncOptions{RedirectHosts: hosts, Namespaces: namespaces, Kinds: registered.ShedKinds()})
	})
	g.Go(func() error { return shed.ServeAnswers(ctx, addr, server) })
	g.Go(func() error { return shed.Serve(ctx, shed.HTTPServer(healthAddr, health)) })
	return g.Wait()
}
