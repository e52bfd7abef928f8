// Package trafficenv is real traffic through a real proxy, for the suite that proves the levers on
// requests (test/traffic) and the bench that times them (test/bench): an embedded control plane
// with the real manager, the real shed server binary and `kubectl floodgate`, a tiny app, and
// Traefik (built from its Go module by hack/traefik.sh) with its kubernetesIngressNGINX,
// kubernetesGateway and kubernetesCRD (for the Middleware of a per-client limit on an HTTPRoute)
// providers.
//
// Every address is loopback or on a test host the environment creates (fixtures.TestHost, a
// network namespace joined by veth): the app listens in the test host, the shed server on this
// side of the veth, and Traefik and the API server on loopback. The API server refuses loopback
// addresses in EndpointSlices, so the app's and the shed pods' endpoints are the test host's
// addresses.
//
// The app is the calling binary itself, run again in the test host: a program using Start calls
// ServeAppIfAsked first thing in its main (or TestMain).
package trafficenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/test/fixtures"
)

// appListenEnv, when set, makes the binary the app (run inside the test host): it listens on the
// address the variable holds and answers every request 200 "app".
const appListenEnv = "FLOODGATE_TRAFFIC_APP_LISTEN"

// AppHeader marks the app's answers, so a count tells them from the shed server's.
const AppHeader = "X-Served-By"

// AppPort is where the app listens in the test host.
const AppPort = 8080

// IngressClass is the class of the environment's Ingresses: ingress-nginx's controller name,
// which Traefik's kubernetesIngressNGINX provider serves.
const IngressClass = "nginx"

// GatewayClass is the GatewayClass of Traefik's Gateway provider, of its default controller name
// (GatewayController).
const (
	GatewayClass      = "traefik"
	GatewayController = "traefik.io/gateway-controller"
)

// RedirectHost is the host a redirected shed may send clients to (the manager's and the shed
// server's shed-redirect-hosts).
const RedirectHost = "status.example.com"

// ProbeKey is the key the manager and the shed servers make and check probe tokens with.
const ProbeKey = "floodgate-traffic-probe-key-0123456789"

// ServeAppIfAsked is the app when the binary was started as one (and then never returns); else
// it returns at once.
func ServeAppIfAsked() {
	addr := os.Getenv(appListenEnv)
	if addr == "" {
		return
	}
	var mu sync.Mutex
	probes := map[string]int{} // by Host: the manager's probes that reached the app
	err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Host == appProbesHost {
			_, _ = fmt.Fprintf(w, "%d\n", probes[r.URL.Query().Get("host")])
			return
		}
		if r.Header.Get(shed.ProbeTokenHeader) != "" {
			probes[r.Host]++
		}
		w.Header().Set(AppHeader, "app")
		_, _ = io.WriteString(w, "app\n")
	}))
	fmt.Fprintln(os.Stderr, "app:", err)
	os.Exit(1)
}

// appProbesHost is the Host the app answers with how many probes reached it for ?host=.
const appProbesHost = "floodgate-app-probes.invalid"

// AppProbes is how many requests carrying a probe token reached the app for host.
func (e *Env) AppProbes(host string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(e.Host.PeerAddress, fmt.Sprint(AppPort))+"/?host="+url.QueryEscape(host), nil)
	if err != nil {
		return 0, err
	}
	req.Host = appProbesHost
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var n int
	_, err = fmt.Fscan(res.Body, &n)
	return n, err
}

// Options shape an environment.
type Options struct {
	// Throttles are Traefik's providersThrottleDuration, one Traefik each (none: one at 100 ms).
	// Traefik's default is 2 s.
	Throttles []time.Duration
}

// Env is a running environment.
type Env struct {
	*drill.Env
	Client client.Client
	Host   *fixtures.TestHost
	// Proxies are the Traefiks' web entry points (host:port on loopback), one per throttle.
	Proxies []string
	// ShedHealth are the shed servers' health listeners (/healthz, /metrics), host:port on
	// loopback: the first is the shed pod's at HostAddress, the second the rolled one's.
	ShedHealth []string
	// RolledShedPod is the address of the second shed server, which no EndpointSlice lists
	// until a test rolls the shed pods to it.
	RolledShedPod string
	// BinDir holds the shed server's and the plugin's binaries, and every process's log.
	BinDir string

	stop    context.CancelFunc
	ctx     context.Context
	traefik string
	proxies int
	procs   []*exec.Cmd
	app     *exec.Cmd
	closers []func()
}

// Start starts an environment. Close it, whatever Start returns with it.
func Start(opts Options) (e *Env, err error) {
	if len(opts.Throttles) == 0 {
		opts.Throttles = []time.Duration{100 * time.Millisecond}
	}
	e = &Env{}
	defer func() {
		if err != nil {
			e.PrintLogs()
		}
	}()
	traefik, err := fixtures.Tool("TRAEFIK", "traefik.sh")
	if err != nil {
		return e, err
	}
	if e.BinDir, err = os.MkdirTemp("", "floodgate-traffic-"); err != nil {
		return e, err
	}
	dir := e.BinDir
	e.closers = append(e.closers, func() { os.RemoveAll(dir) })
	for _, pkg := range []string{"cmd/shed-server", "cmd/kubectl-floodgate"} {
		if _, err := fixtures.Build(e.BinDir, pkg); err != nil {
			return e, err
		}
	}
	if e.Host, err = fixtures.NewTestHost(); err != nil {
		return e, err
	}
	host := e.Host
	e.closers = append(e.closers, func() { _ = host.Close() })

	// The plugin reads the real clock: the manager's starts at real now. Traefik's Gateway
	// provider is one the manager knows to match a RegularExpression header (by default). Its
	// NGINX provider serves ingress-nginx's classes: the manager is told this cluster moved
	// (--data-plane-controllers k8s.io/ingress-nginx=traefik), as the README says to.
	settings := registered.Settings{
		RedirectHosts:        shed.ParseRedirectHosts(RedirectHost),
		DataPlaneControllers: map[string]provider.DataPlane{"k8s.io/ingress-nginx": "traefik"},
	}
	root, err := fixtures.ModuleRoot()
	if err != nil {
		return e, err
	}
	// One probe key for the manager and both shed servers, as one Secret mounted in both.
	keyFile := filepath.Join(e.BinDir, "probe-key")
	if err := os.WriteFile(keyFile, []byte(ProbeKey), 0o600); err != nil {
		return e, err
	}
	if e.Env, err = drill.StartEnvWith(time.Now(), drill.EnvOptions{Settings: settings, ShedPodAddresses: []string{e.Host.HostAddress},
		ProbeKey: []byte(ProbeKey), UnguardedGates: true}, proxyCRDs(root)...); err != nil {
		return e, err
	}
	e.closers = append(e.closers, e.Env.Close)
	e.Client = e.Env.Client

	ctx, stop := context.WithCancel(context.Background())
	e.stop = stop
	// The shed pods: the shed server's binary, twice, on this side of the test host's veth. The
	// shed pods' EndpointSlice lists the first; the second is where a rollout moves them.
	if e.RolledShedPod, err = e.Host.AddHostAddress(3); err != nil {
		return e, err
	}
	listens := map[string]string{}
	for i, address := range []string{e.Host.HostAddress, e.RolledShedPod} {
		addr := net.JoinHostPort(address, fmt.Sprint(manager.DefaultShed.Port))
		health, err := freeLoopbackPort()
		if err != nil {
			return e, err
		}
		e.ShedHealth = append(e.ShedHealth, health)
		shedServer := exec.CommandContext(ctx, filepath.Join(e.BinDir, "shed-server"), "--listen", addr, "--health-listen", health,
			"--shed-redirect-hosts", RedirectHost, "--probe-key-file", keyFile)
		shedServer.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig)
		if err := e.start(shedServer, fmt.Sprintf("shed-server-%d.log", i+1)); err != nil {
			return e, err
		}
		listens[fmt.Sprintf("shed server %d", i+1)] = addr
	}
	// The app, in the test host.
	appAddr := net.JoinHostPort(e.Host.PeerAddress, fmt.Sprint(AppPort))
	self, err := os.Executable()
	if err != nil {
		return e, err
	}
	e.app = e.Host.Command(self)
	e.app.Env = append(os.Environ(), appListenEnv+"="+appAddr)
	if err := e.start(e.app, "app.log"); err != nil {
		return e, err
	}
	listens["the app"] = appAddr
	// Traefik, once per throttle.
	e.traefik, e.ctx = traefik, ctx
	for i, throttle := range opts.Throttles {
		web, _, err := e.StartProxy(throttle)
		if err != nil {
			return e, err
		}
		e.Proxies = append(e.Proxies, web)
		listens[fmt.Sprintf("Traefik %d", i+1)] = web
	}
	for what, addr := range listens {
		if err := listening(addr); err != nil {
			return e, fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := e.Client.Create(ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: IngressClass},
		Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}}); err != nil {
		return e, err
	}
	if err := e.Client.Create(ctx, &gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: GatewayClass},
		Spec: gatewayv1.GatewayClassSpec{ControllerName: GatewayController}}); err != nil {
		return e, err
	}
	return e, nil
}

// StartProxy starts one more Traefik, on the same objects, with its throttle, and returns its
// web entry point (host:port on loopback) once it listens, and how to stop it.
func (e *Env) StartProxy(throttle time.Duration) (web string, stop func(), err error) {
	e.proxies++
	n := e.proxies
	if web, err = freeLoopbackPort(); err != nil {
		return "", nil, err
	}
	ping, err := freeLoopbackPort()
	if err != nil {
		return "", nil, err
	}
	config := filepath.Join(e.BinDir, fmt.Sprintf("traefik-%d.yaml", n))
	if err := os.WriteFile(config, []byte(traefikConfig(web, ping, throttle)), 0o644); err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(e.ctx)
	proxyCmd := exec.CommandContext(ctx, e.traefik, "--configFile="+config)
	proxyCmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig)
	if err := e.start(proxyCmd, fmt.Sprintf("traefik-%d.log", n)); err != nil {
		cancel()
		return "", nil, err
	}
	if err := listening(web); err != nil {
		cancel()
		return "", nil, fmt.Errorf("Traefik %d: %w", n, err)
	}
	return web, func() { cancel(); _ = proxyCmd.Wait() }, nil
}

func (e *Env) start(cmd *exec.Cmd, log string) error {
	out, err := os.Create(filepath.Join(e.BinDir, log))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	e.procs = append(e.procs, cmd)
	return nil
}

// Close stops every process and removes what Start made.
func (e *Env) Close() {
	if e.app != nil && e.app.Process != nil {
		// SIGTERM, not a kill: under sudo, sudo passes it on to the app.
		_ = e.app.Process.Signal(syscall.SIGTERM)
	}
	if e.stop != nil {
		e.stop()
	}
	for _, p := range e.procs {
		_ = p.Wait()
	}
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// Floodgate runs `kubectl floodgate ARGS` (the real kubectl and the plugin binary) and returns
// its output.
func (e *Env) Floodgate(args ...string) (string, error) {
	return e.Kubectl(append([]string{"floodgate"}, args...)...)
}

// Kubectl runs the real kubectl against the environment, with the plugin on its PATH.
func (e *Env) Kubectl(args ...string) (string, error) {
	cmd := exec.Command(e.ControlPlane.Kubectl(), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig, "PATH="+e.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// PrintLogs prints the end of each process's log.
func (e *Env) PrintLogs() {
	if e.BinDir == "" {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(e.BinDir, "*.log"))
	for _, log := range logs {
		if b, err := os.ReadFile(log); err == nil {
			fmt.Fprintf(os.Stderr, "--- %s (last 4 KiB)\n%s\n", filepath.Base(log), tail(b, 4096))
		}
	}
}

// traefikConfig is Traefik's static configuration: no version check or usage report (nothing
// off this machine is reached), one entry point for traffic, one for its ping, the three
// providers, and the provider throttle.
func traefikConfig(web, ping string, throttle time.Duration) string {
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
  providersThrottleDuration: %s
  kubernetesIngressNGINX: {}
  kubernetesGateway: {}
  kubernetesCRD: {}
log:
  level: INFO
`, web, ping, throttle)
}

// proxyCRDs are the CRDs Traefik's providers watch: Gateway API's, and Traefik's own.
func proxyCRDs(root string) []string {
	var files []string
	for _, f := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants"} {
		files = append(files, filepath.Join(root, "test", "crds", "gateway-api", "gateway.networking.k8s.io_"+f+".yaml"))
	}
	for _, f := range []string{"grpcroutes", "tlsroutes", "backendtlspolicies"} {
		files = append(files, filepath.Join(root, "test", "crds", "gateway-api-routes", "gateway.networking.k8s.io_"+f+".yaml"))
	}
	return append(files, filepath.Join(root, "test", "crds", "traefik", "kubernetes-crd-definition-v1.yml"))
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
