package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/drill"
)

// TestOneLeverAcrossThreeClusters: `kubectl floodgate --context syd,sin,fra` through the real
// kubectl and the plugin's binary, against three control planes, each with its own manager:
// every cluster's diff in a dry run, one row per cluster, the shed on all three, the safe order
// (a canary first, one by one) kept, and a cluster whose API server was stopped named in the
// table with a non-zero exit while the others take the lever.
func TestOneLeverAcrossThreeClusters(t *testing.T) {
	clusters := map[string]*drill.Env{"syd": env, "sin": startCluster(t), "fra": startCluster(t)}
	kubeconfig := fleetKubeconfig(t, clusters)
	const ns = "fleet"
	for _, e := range clusters {
		if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		p := fixtureOn(t, e.Client, ns, nil)
		if e == env {
			deleteWhenDone(t, e.Client, p) // the suite's own cluster goes on; the others go with the test
		}
	}
	for name, e := range clusters {
		eventually(t, func() bool { return armedOn(t, e.Client, ns) })
		t.Logf("%s armed", name)
	}
	fleet := func(args ...string) (string, error) {
		return kubectl(t, kubeconfig, append([]string{"floodgate", "-n", ns}, args...)...)
	}

	t.Log("a dry run shows each cluster's diff and changes nothing")
	out, err := fleet("shed", "api", "--context", "syd,sin,fra", "--dry-run")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, c := range []string{"syd", "sin", "fra"} {
		if !regexp.MustCompile(`(?s)== ` + c + ` ==\n.*\+\+\+ Ingress api`).MatchString(out) {
			t.Errorf("the dry run does not show %s's diff:\n%s", c, out)
		}
		if p := policyOn(t, clusters[c].Client, ns); p.Spec.Action != v1alpha1.ActionNormal {
			t.Errorf("a dry run changed %s: action %s", c, p.Spec.Action)
		}
	}

	t.Log("one cluster, then all three, shed and waited for")
	start := time.Now()
	if out, err = fleet("shed", "api", "--context", "syd", "--wait"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	one := time.Since(start)
	start = time.Now()
	out, err = fleet("shed", "api", "--context", "syd,sin,fra", "--wait", "--reason", "herd in every region")
	three := time.Since(start)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("shed with --wait: one cluster %s, three clusters %s (through kubectl and the plugin binary)\n%s", one.Round(time.Millisecond), three.Round(time.Millisecond), out)
	for _, c := range []string{"syd", "sin", "fra"} {
		if !regexp.MustCompile(`(?m)^` + c + `\s+ShedAll\s+Shedding\s+True\s+\S+\s+\S+\s+-$`).MatchString(out) {
			t.Errorf("no row says %s sheds:\n%s", c, out)
		}
	}

	t.Log("every other lever, on two clusters at once (syd, the suite's own cluster, keeps its clock)")
	lever := func(args ...string) {
		t.Helper()
		out, err := fleet(append(args, "--context", "sin,fra")...)
		if err != nil || !regexp.MustCompile(`(?m)^sin\s.*\s-$`).MatchString(out) || !regexp.MustCompile(`(?m)^fra\s.*\s-$`).MatchString(out) {
			t.Errorf("%s on sin and fra (%v):\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, args := range [][]string{{"ramp", "api", "--wait"}, {"pause", "api"}, {"resume", "api"}, {"next", "api"}, {"back", "api"}, {"next", "api"}} {
		lever(args...)
	}
	for _, c := range []string{"sin", "fra"} {
		clusters[c].Clock.Advance(10 * time.Minute) // the last step's hold ends: it waits for an approve
		eventually(t, func() bool {
			p := policyOn(t, clusters[c].Client, ns)
			return p.Status.Ramp != nil && p.Status.Ramp.AwaitingApproval
		})
	}
	lever("approve", "api")
	for _, c := range []string{"sin", "fra"} {
		eventually(t, func() bool { return policyOn(t, clusters[c].Client, ns).Status.Phase == v1alpha1.PhaseReleasing }) // approved: full traffic
	}
	for _, args := range [][]string{{"allow", "api", "AU", "NZ"}, {"allow", "api"}, {"history", "api"}} {
		lever(args...)
	}
	for _, c := range []string{"sin", "fra"} {
		p := policyOn(t, clusters[c].Client, ns)
		if p.Spec.Action != v1alpha1.ActionRamp || len(p.Spec.AllowRegions) != 0 || p.Spec.Ramp.Paused {
			t.Errorf("%s after the levers: action %s, allowRegions %v, paused %t", c, p.Spec.Action, p.Spec.AllowRegions, p.Spec.Ramp.Paused)
		}
	}

	t.Log("watch follows both clusters, each line named, until both are at rest")
	watching := exec.Command(kubectlBin, "floodgate", "-n", ns, "watch", "api", "--context", "sin,fra")
	watching.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var watched strings.Builder
	watching.Stdout, watching.Stderr = &watched, &watched
	if err := watching.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the watches are open
	if out, err := fleet("restore", "api", "--context", "sin,fra", "--wait"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, c := range []string{"sin", "fra"} {
		clusters[c].Clock.Advance(5 * time.Minute) // the autoscalers' release (releaseAfter) ends
	}
	done := make(chan error, 1)
	go func() { done <- watching.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(watched.String(), "[sin] trafficpolicy/api is at rest (Normal)") ||
			!strings.Contains(watched.String(), "[fra] trafficpolicy/api is at rest (Normal)") {
			t.Errorf("watch over sin and fra (%v):\n%s", err, watched.String())
		}
	case <-time.After(30 * time.Second):
		_ = watching.Process.Kill()
		t.Fatalf("watch did not return once both clusters were at rest:\n%s", watched.String())
	}

	t.Log("the safe order: a canary that fails touches nothing else; one by one stops at the first failure")
	stopAPIServer(t, clusters["fra"])
	before := map[string]string{}
	for _, c := range []string{"syd", "sin"} {
		before[c] = policyOn(t, clusters[c].Client, ns).Annotations[v1alpha1.RequestAnnotation]
	}
	out, err = fleet("restore", "api", "--context", "syd,sin,fra", "--canary-cluster", "fra", "--cluster-timeout", "10s")
	if err == nil || !strings.Contains(out, "canary cluster fra failed") || !strings.Contains(out, "not done on 3 of 3 clusters: fra, syd, sin") {
		t.Fatalf("a failed canary must stop the rest and exit non-zero (%v):\n%s", err, out)
	}
	for c, want := range map[string]v1alpha1.Action{"syd": v1alpha1.ActionShedAll, "sin": v1alpha1.ActionNormal} {
		if p := policyOn(t, clusters[c].Client, ns); p.Spec.Action != want || p.Annotations[v1alpha1.RequestAnnotation] != before[c] {
			t.Errorf("%s was touched after its canary failed: action %s, request %s", c, p.Spec.Action, p.Annotations[v1alpha1.RequestAnnotation])
		}
	}
	out, err = fleet("restore", "api", "--context", "sin,fra,syd", "--one-by-one", "--cluster-timeout", "10s")
	if err == nil || !regexp.MustCompile(`(?m)^syd\s.*not started: stopped at fra \(--one-by-one\)$`).MatchString(out) {
		t.Fatalf("one by one must stop at fra, leaving syd untouched (%v):\n%s", err, out)
	}
	if p := policyOn(t, clusters["sin"].Client, ns); p.Annotations[v1alpha1.RequestAnnotation] == before["sin"] {
		t.Errorf("sin, first of the order, got no request: %v", p.Annotations)
	}
	if p := policyOn(t, clusters["syd"].Client, ns); p.Spec.Action != v1alpha1.ActionShedAll || p.Annotations[v1alpha1.RequestAnnotation] != before["syd"] {
		t.Errorf("syd, after the failed fra, was touched: %s %v", p.Spec.Action, p.Annotations)
	}

	t.Log("a partial failure: every reachable cluster takes the lever, the unreachable one is named")
	out, err = fleet("shed", "api", "--context", "syd,sin,fra", "--wait", "--cluster-timeout", "10s")
	if err == nil || !strings.Contains(out, "not done on 1 of 3 clusters: fra") || !regexp.MustCompile(`(?m)^fra\s+-\s+-\s+-\s+-\s+\S+\s+\S+`).MatchString(out) {
		t.Fatalf("a stopped API server must fail the command and be named in its row (%v):\n%s", err, out)
	}
	for _, c := range []string{"syd", "sin"} {
		if !regexp.MustCompile(`(?m)^` + c + `\s+ShedAll\s+Shedding\s`).MatchString(out) {
			t.Errorf("%s did not take the lever beside the stopped fra:\n%s", c, out)
		}
	}
	out, err = fleet("status", "api", "--context", "syd,sin")
	if err != nil || !regexp.MustCompile(`(?m)^sin\s+ShedAll\s+Shedding\s+True\s`).MatchString(out) || !strings.Contains(out, "== syd ==") {
		t.Errorf("status over two clusters (%v):\n%s", err, out)
	}

}

// stopAPIServer kills a cluster's API server, as a region's control plane lost: the process, not
// the environment, so nothing waits for a graceful shutdown on a loaded machine.
func stopAPIServer(t *testing.T, e *drill.Env) {
	t.Helper()
	u, err := url.Parse(e.ControlPlane.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(cmdline), "kube-apiserver") || !strings.Contains(string(cmdline), "--secure-port="+u.Port()+"\x00") {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, func() bool { return syscall.Kill(pid, 0) != nil || isZombie(pid) })
		return
	}
	t.Fatalf("no kube-apiserver process serves %s", e.ControlPlane.Config.Host)
}

// isZombie reports whether a process has exited and waits for its parent to reap it.
func isZombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err != nil || strings.Contains(string(stat), ") Z ")
}

// startCluster starts another control plane with its own manager, for the test.
func startCluster(t *testing.T) *drill.Env {
	t.Helper()
	e, err := drill.StartEnv(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// fleetKubeconfig is one kubeconfig with a context per cluster, named as the map names them.
func fleetKubeconfig(t *testing.T, clusters map[string]*drill.Env) string {
	t.Helper()
	merged := clientcmdapi.NewConfig()
	for name, e := range clusters {
		cfg, err := clientcmd.LoadFromFile(e.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		cur := cfg.Contexts[cfg.CurrentContext]
		merged.Clusters[name] = cfg.Clusters[cur.Cluster]
		merged.AuthInfos[name] = cfg.AuthInfos[cur.AuthInfo]
		merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
		merged.CurrentContext = name
	}
	path := filepath.Join(t.TempDir(), "fleet.kubeconfig")
	if err := clientcmd.WriteToFile(*merged, path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func policyOn(t *testing.T, c client.Client, ns string) *v1alpha1.TrafficPolicy {
	t.Helper()
	p := &v1alpha1.TrafficPolicy{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func armedOn(t *testing.T, c client.Client, ns string) bool {
	p := policyOn(t, c, ns)
	armed := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionArmed)
	return p.Status.Phase == v1alpha1.PhaseNormal && armed != nil && armed.Status == metav1.ConditionTrue
}
