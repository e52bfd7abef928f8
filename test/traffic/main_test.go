// Package traffic proves the levers on real requests through a real proxy. Traefik (built from its
// Go module by hack/traefik.sh) runs with its kubernetesIngressNGINX, kubernetesGateway and
// kubernetesCRD (for the Middleware of a per-client limit on an HTTPRoute) providers against an embedded control plane, beside the real manager, the real shed server
// binary and `kubectl floodgate`. A tiny app answers what gets through.
//
// Every address is loopback or on a test host the suite creates (fixtures.TestHost, a network
// namespace joined by veth): the app listens in the test host, the shed server on this side of
// the veth, and Traefik and the API server on loopback. The API server refuses loopback addresses
// in EndpointSlices, so the app's and the shed pods' endpoints are the test host's addresses.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/test/fixtures"
)

// appListenEnv, when set, makes the test binary the app (run inside the test host): it listens on
// the address the variable holds and answers every request 200 "app".
const appListenEnv = "FLOODGATE_TRAFFIC_APP_LISTEN"

// AppHeader marks the app's answers, so a count tells them from the shed server's.
const AppHeader = "X-Served-By"

var (
	env   *drill.Env
	k8s   client.Client
	host  *fixtures.TestHost
	proxy string // Traefik's web entry point, host:port on loopback
	// rolledShedPod is the address of the second shed server, which no EndpointSlice lists
	// until a test rolls the shed pods to it.
	rolledShedPod string
	binDir        string
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(appListenEnv); addr != "" {
		serveApp(addr)
		return
	}
	ctrl.SetLogger(logr.Discard())
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "traffic:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// serveApp is the app: 200 "app", marked, for every request.
func serveApp(addr string) {
	err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(AppHeader, "app")
		_, _ = io.WriteString(w, "app\n")
	}))
	fmt.Fprintln(os.Stderr, "app:", err)
	os.Exit(1)
}

func run(m *testing.M) (int, error) {
	traefik, err := fixtures.Tool("TRAEFIK", "traefik.sh")
	if err != nil {
		return 0, err
	}
	if binDir, err = os.MkdirTemp("", "floodgate-traffic-"); err != nil {
		return 0, err
	}
	defer os.RemoveAll(binDir)
	for _, pkg := range []string{"cmd/shed-server", "cmd/kubectl-floodgate"} {
		if _, err := fixtures.Build(binDir, pkg); err != nil {
			return 0, err
		}
	}
	if host, err = fixtures.NewTestHost(); err != nil {
		return 0, err
	}
	defer host.Close()

	// The plugin reads the real clock: the manager's starts at real now. Traefik's Gateway
	// provider is one the manager knows to match a RegularExpression header (by default). Its
	// NGINX provider serves ingress-nginx's classes: the manager is told this cluster moved
	// (--data-plane-controllers k8s.io/ingress-nginx=traefik), as the README says to.
	settings := registered.Settings{
		RedirectHosts:        shed.ParseRedirectHosts(redirectHost),
		DataPlaneControllers: map[string]provider.DataPlane{"k8s.io/ingress-nginx": "traefik"},
	}
	if env, err = drill.StartEnvWith(time.Now(), drill.EnvOptions{Settings: settings, ShedPodAddresses: []string{host.HostAddress}}, proxyCRDs()...); err != nil {
		return 0, err
	}
	defer env.Close()
	k8s = env.Client

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var procs []*exec.Cmd
	defer func() {
		stop()
		for _, p := range procs {
			_ = p.Wait()
		}
	}()
	start := func(cmd *exec.Cmd, log string) error {
		out, err := os.Create(filepath.Join(binDir, log))
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", cmd.Path, err)
		}
		procs = append(procs, cmd)
		return nil
	}

	// The shed pods: the shed server's binary, twice, on this side of the test host's veth. The
	// shed pods' EndpointSlice lists the first; the second is where a rollout moves them.
	if rolledShedPod, err = host.AddHostAddress(3); err != nil {
		return 0, err
	}
	listens := map[string]string{}
	for i, address := range []string{host.HostAddress, rolledShedPod} {
		addr := net.JoinHostPort(address, fmt.Sprint(manager.DefaultShed.Port))
		shedServer := exec.CommandContext(ctx, filepath.Join(binDir, "shed-server"), "--listen", addr, "--health-listen", "127.0.0.1:0",
			"--shed-redirect-hosts", redirectHost)
		shedServer.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
		if err := start(shedServer, fmt.Sprintf("shed-server-%d.log", i+1)); err != nil {
			return 0, err
		}
		listens[fmt.Sprintf("shed server %d", i+1)] = addr
	}
	// The app, in the test host.
	appAddr := net.JoinHostPort(host.PeerAddress, fmt.Sprint(appPort))
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	app := host.Command(self)
	app.Env = append(os.Environ(), appListenEnv+"="+appAddr)
	if err := start(app, "app.log"); err != nil {
		return 0, err
	}
	// SIGTERM, not a kill: under sudo, sudo passes it on to the app.
	defer func() { _ = app.Process.Signal(syscall.SIGTERM) }()
	// Traefik.
	if proxy, err = freeLoopbackPort(); err != nil {
		return 0, err
	}
	ping, err := freeLoopbackPort()
	if err != nil {
		return 0, err
	}
	config := filepath.Join(binDir, "traefik.yaml")
	if err := os.WriteFile(config, []byte(traefikConfig(proxy, ping)), 0o644); err != nil {
		return 0, err
	}
	proxyCmd := exec.CommandContext(ctx, traefik, "--configFile="+config)
	proxyCmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
	if err := start(proxyCmd, "traefik.log"); err != nil {
		return 0, err
	}
	listens["the app"], listens["Traefik"] = appAddr, proxy
	for what, addr := range listens {
		if err := listening(addr); err != nil {
			printLogs()
			return 0, fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := k8s.Create(ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: ingressClass},
		Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}}); err != nil {
		return 0, err
	}
	if err := k8s.Create(ctx, &gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: traefikGatewayClass},
		Spec: gatewayv1.GatewayClassSpec{ControllerName: traefikGatewayController}}); err != nil {
		return 0, err
	}
	code := m.Run()
	if code != 0 {
		printLogs()
	}
	return code, nil
}

// printLogs prints the end of each process's log (they go with the suite's directory).
func printLogs() {
	for _, log := range []string{"traefik.log", "shed-server-1.log", "shed-server-2.log", "app.log"} {
		if b, err := os.ReadFile(filepath.Join(binDir, log)); err == nil {
			fmt.Fprintf(os.Stderr, "--- %s (last 4 KiB)\n%s\n", log, tail(b, 4096))
		}
	}
}

// ingressClass is the class of the suite's Ingresses: ingress-nginx's controller name, which
// Traefik's kubernetesIngressNGINX provider serves.
const ingressClass = "nginx"

// appPort is where the app listens in the test host.
const appPort = 8080

// traefikConfig is Traefik's static configuration: no version check or usage report (the suite
// reaches nothing off this machine), one entry point for traffic, one for its ping, the three
// providers, and a short provider throttle (the default, 2 s, is measured in
// make bench, not here).
func traefikConfig(web, ping string) string {
	return fmt.Sprintf(`global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  web:
    address: %q
  ping:
    address: %q
ping:
  entryPoint: ping
providers:
  providersThrottleDuration: 100ms
  kubernetesIngressNGINX: {}
  kubernetesGateway: {}
  kubernetesCRD: {}
log:
  level: INFO
`, web, ping)
}

// proxyCRDs are the CRDs Traefik's providers watch: Gateway API's, and Traefik's own.
func proxyCRDs() []string {
	var files []string
	for _, f := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants"} {
		files = append(files, filepath.Join("..", "crds", "gateway-api", "gateway.networking.k8s.io_"+f+".yaml"))
	}
	for _, f := range []string{"grpcroutes", "tlsroutes", "backendtlspolicies"} {
		files = append(files, filepath.Join("..", "crds", "gateway-api-routes", "gateway.networking.k8s.io_"+f+".yaml"))
	}
	return append(files, filepath.Join("..", "crds", "traefik", "kubernetes-crd-definition-v1.yml"))
}

func freeLoopbackPort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// listening waits up to 30 s for addr to accept a connection.
func listening(addr string) error {
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			return c.Close()
		}
	}
	return errors.Join(fmt.Errorf("nothing listens on %s", addr), err)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
