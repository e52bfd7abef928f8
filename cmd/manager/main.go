// Command manager runs the Floodgate controller.
package main

import (
	"flag"
	"os"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"floodgate.dev/floodgate/internal/gate"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/shed"
)

func main() {
	opts := manager.Options{Shed: manager.DefaultShed}
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "address of the metrics endpoint (0 disables it)")
	flag.StringVar(&opts.HealthAddr, "health-probe-bind-address", ":8081", "address of the health probes")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect a leader so only one manager acts")
	flag.StringVar(&opts.Shed.Namespace, "shed-namespace", opts.Shed.Namespace, "namespace of the shed backend Service")
	flag.StringVar(&opts.Shed.ServiceName, "shed-service", opts.Shed.ServiceName, "name of the shed backend Service")
	flag.IntVar(&opts.Workers, "workers", manager.DefaultWorkers, "how many policies are reconciled at once")
	flag.IntVar(&opts.GateReadersPerPolicy, "gate-readers-per-policy", gate.DefaultPerPolicy, "how many of one policy's network gates (webhook, Prometheus) are read at once")
	guard := true
	flag.BoolVar(&guard, "gate-egress-guard", true, "refuse gate connections to loopback, link-local and the API server's addresses, follow no redirect, cap answers")
	var watch string
	flag.StringVar(&watch, "watch-namespaces", "", "comma-separated namespaces to act in (default: every namespace); bind the RBAC per namespace (config/namespaced)")
	var redirectHosts string
	flag.StringVar(&redirectHosts, "shed-redirect-hosts", os.Getenv(shed.RedirectHostsEnv),
		"comma-separated hosts a shed answer may redirect to (*.example.com for a domain); empty: redirects off (default from $"+shed.RedirectHostsEnv+"; the shed server reads the same)")
	var port int
	flag.IntVar(&port, "shed-port", int(opts.Shed.Port), "container port of the shed pods")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	opts.Shed.Port = int32(port)
	opts.RedirectHosts = shed.ParseRedirectHosts(redirectHosts)
	opts.UnguardedGates = !guard
	for _, ns := range strings.Split(watch, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			opts.WatchNamespaces = append(opts.WatchNamespaces, ns)
		}
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	ctx := ctrl.SetupSignalHandler()
	mgr, err := manager.New(ctx, ctrl.GetConfigOrDie(), opts)
	if err != nil {
		log.Error(err, "unable to set up the manager")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the ready check")
		os.Exit(1)
	}
	log.Info("starting manager")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}
