// Command manager runs the Floodgate controller.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"floodgate.dev/floodgate/internal/confirm"
	"floodgate.dev/floodgate/internal/gate"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/shed"
)

func main() {
	opts := manager.Options{Shed: manager.DefaultShed}
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "address of the metrics endpoint (0 disables it)")
	flag.StringVar(&opts.HealthAddr, "health-probe-bind-address", ":8081", "address of the health probes")
	flag.StringVar(&opts.PprofAddr, "pprof-bind-address", "", "address serving Go's pprof profiles (empty: off)")
	flag.StringVar(&opts.Shed.Namespace, "shed-namespace", opts.Shed.Namespace, "namespace of the shed backend Service")
	flag.StringVar(&opts.Shed.ServiceName, "shed-service", opts.Shed.ServiceName, "name of the shed backend Service")
	flag.IntVar(&opts.Workers, "workers", manager.DefaultWorkers, "how many policies are reconciled at once")
	var qps float64
	flag.Float64Var(&qps, "kube-api-qps", manager.DefaultAPIQPS, "Floodgate's own client-side budget of requests per second to the API server (a 1,000-target flip needs about 1,000 writes)")
	flag.IntVar(&opts.APIBurst, "kube-api-burst", manager.DefaultAPIBurst, "how many requests may go at once above --kube-api-qps")
	var armQPS float64
	flag.Float64Var(&armQPS, "arm-qps", manager.DefaultArmQPS, "the armer's own budget of dry-run requests per second (judging every lever before the incident; never taken from --kube-api-qps)")
	flag.IntVar(&opts.ArmBurst, "arm-burst", manager.DefaultArmBurst, "how many dry-run requests may go at once above --arm-qps")
	flag.IntVar(&opts.GateReadersPerPolicy, "gate-readers-per-policy", gate.DefaultPerPolicy, "how many of one policy's network gates (webhook, Prometheus) are read at once")
	guard := true
	flag.BoolVar(&guard, "gate-egress-guard", true, "refuse gate connections to loopback, link-local and the API server's addresses, follow no redirect, cap answers")
	var watch string
	flag.StringVar(&watch, "watch-namespaces", "", "comma-separated namespaces to act in (default: every namespace); bind the RBAC per namespace (config/namespaced)")
	var redirectHosts string
	flag.StringVar(&redirectHosts, "shed-redirect-hosts", os.Getenv(shed.RedirectHostsEnv),
		"comma-separated hosts a shed answer may redirect to (*.example.com for a domain); empty: redirects off (default from $"+shed.RedirectHostsEnv+"; the shed server reads the same)")
	var dataPlaneControllers, probeKeyFile, confirmAddresses string
	flag.StringVar(&probeKeyFile, "probe-key-file", "", "file holding the key probe tokens are made with (a Secret the shed server mounts too); empty: no lever is confirmed by probes")
	flag.StringVar(&confirmAddresses, "confirm-address", "", "comma-separated data-plane=URL pairs that probes are sent to for policies whose spec.confirm names no address, for example traefik=http://traefik.traefik.svc:80")
	regexControllers, set := os.LookupEnv(registered.RegexHeaderControllersEnv)
	if !set {
		regexControllers = strings.Join(registered.DefaultRegexHeaderControllers(), ",")
	}
	flag.StringVar(&regexControllers, "regex-header-controllers", regexControllers,
		"comma-separated Gateway API controllerNames known to match RegularExpression header matches with RE2/PCRE-compatible syntax: a region allowlist that needs one is refused on routes other gateways serve (default from $"+registered.RegexHeaderControllersEnv+", else Envoy Gateway's)")
	flag.StringVar(&dataPlaneControllers, "data-plane-controllers", os.Getenv(registered.DataPlaneControllersEnv),
		"comma-separated controller=data-plane pairs mapping more IngressClass/GatewayClass controller names onto a data plane, for example k8s.io/ingress-nginx=traefik where Traefik's NGINX provider serves ingress-nginx's classes (default from $"+registered.DataPlaneControllersEnv+")")
	flag.DurationVar(&opts.GracefulShutdownTimeout, "graceful-shutdown-timeout", manager.DefaultGracefulShutdownTimeout, "how long a signalled manager may take to stop; the process exits by then whatever happens")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect a leader so only one manager acts")
	flag.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader Lease (default: the manager's own, in a cluster)")
	flag.DurationVar(&opts.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a leader's lease lasts without renewal")
	flag.DurationVar(&opts.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long a leader tries to renew before it gives up leading")
	flag.DurationVar(&opts.RetryPeriod, "leader-election-retry-period", 2*time.Second, "how often candidates try to acquire or renew the lease")
	var port int
	flag.IntVar(&port, "shed-port", int(opts.Shed.Port), "container port of the shed pods")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	opts.Shed.Port = int32(port)
	opts.APIQPS = float32(qps)
	opts.ArmQPS = float32(armQPS)
	opts.RedirectHosts = shed.ParseRedirectHosts(redirectHosts)
	opts.UnguardedGates = !guard
	opts.RegexHeaderControllers = registered.ParseList(regexControllers)
	var err error
	if opts.DataPlaneControllers, err = registered.ParseDataPlaneControllers(dataPlaneControllers); err != nil {
		fmt.Fprintf(os.Stderr, "--data-plane-controllers: %v\n", err)
		os.Exit(2)
	}
	if opts.ProbeKey, err = shed.ReadProbeKey(probeKeyFile); err != nil {
		fmt.Fprintf(os.Stderr, "--probe-key-file: %v\n", err)
		os.Exit(2)
	}
	if opts.ConfirmAddresses, err = confirm.ParseAddresses(confirmAddresses); err != nil {
		fmt.Fprintf(os.Stderr, "--confirm-address: %v\n", err)
		os.Exit(2)
	}
	if ns := registered.ParseList(watch); len(ns) > 0 {
		opts.WatchNamespaces = ns
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := manager.Run(ctrl.SetupSignalHandler(), ctrl.GetConfigOrDie(), opts); err != nil {
		ctrl.Log.Error(err, "manager stopped")
		os.Exit(1)
	}
}
