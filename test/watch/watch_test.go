// Package watch tests `kubectl floodgate watch` as a person runs it: the real binary in a real
// terminal (tmux: send-keys and capture-pane), against a real API server with the manager running,
// and with its output piped (no terminal control codes).
package watch

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/test/fixtures"
)

var (
	env    *drill.Env
	plugin string
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "floodgate-watch")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if plugin, err = fixtures.Build(dir, "cmd/kubectl-floodgate"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		fmt.Fprintln(os.Stderr, "tmux is missing: run hack/ensure-debs.sh tmux=tmux (make test does)")
		return 1
	}
	if env, err = drill.StartEnv(time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Close()
	return m.Run()
}

// fixture creates a namespace with an Ingress and a policy at rest over it.
func fixture(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	prefix := networkingv1.PathTypePrefix
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: ns + ".example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
				}}}}}}},
		&v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
			Spec: v1alpha1.TrafficPolicySpec{TargetRefs: []v1alpha1.TargetRef{{Name: "api"}}}},
	} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the policy at rest", func() bool { return phase(t, ns) == v1alpha1.PhaseNormal })
}

func phase(t *testing.T, ns string) v1alpha1.Phase {
	var p v1alpha1.TrafficPolicy
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, &p); err != nil {
		return ""
	}
	return p.Status.Phase
}

func setAction(t *testing.T, ns string, action v1alpha1.Action) {
	t.Helper()
	var p v1alpha1.TrafficPolicy
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, &p); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Action = action
	if err := env.Client.Patch(context.Background(), &p, patch); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tmux runs a tmux command on the test's own server socket.
func tmux(t *testing.T, socket string, args ...string) string {
	t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", socket}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen waits until the pane shows want, and returns what it shows.
func screen(t *testing.T, socket, want string) string {
	t.Helper()
	var pane string
	deadline := time.Now().Add(30 * time.Second)
	for {
		pane = tmux(t, socket, "capture-pane", "-p", "-t", "watch")
		if strings.Contains(pane, want) {
			return pane
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q; it shows:\n%s", want, pane)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startInTmux(t *testing.T, ns string) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "tmux.sock")
	cmd := fmt.Sprintf("%s --kubeconfig %s watch api -n %s; echo WATCH-EXITED-$?; sleep 60", plugin, env.Kubeconfig, ns)
	tmux(t, socket, "new-session", "-d", "-s", "watch", "-x", "160", "-y", "50", cmd)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", socket, "kill-server").Run() })
	return socket
}

func TestWatchRedrawsLiveInATerminalAndReturnsWhenThePolicyComesToRest(t *testing.T) {
	ns := "watch-live"
	fixture(t, ns)
	socket := startInTmux(t, ns)
	screen(t, socket, "Phase:            Normal")

	setAction(t, ns, v1alpha1.ActionShedAll)
	pane := screen(t, socket, "Phase:            Shedding")
	if strings.Contains(pane, "Phase:            Normal") {
		t.Fatalf("the view is redrawn in place, not appended:\n%s", pane)
	}
	if !strings.Contains(pane, "Ingress api") || !strings.Contains(pane, "Every change of trafficpolicy/api, live") {
		t.Fatalf("the live view shows the targets:\n%s", pane)
	}

	setAction(t, ns, v1alpha1.ActionNormal)
	pane = screen(t, socket, "WATCH-EXITED-0")
	if !strings.Contains(pane, "trafficpolicy/api is at rest (Normal)") {
		t.Fatalf("watch must say why it returned:\n%s", pane)
	}
}

func TestCtrlCStopsWatching(t *testing.T) {
	ns := "watch-interrupt"
	fixture(t, ns)
	socket := startInTmux(t, ns)
	screen(t, socket, "Phase:            Normal")
	tmux(t, socket, "send-keys", "-t", "watch", "C-c")
	pane := screen(t, socket, "WATCH-EXITED-")
	if !strings.Contains(pane, "stopped watching") {
		t.Fatalf("an interrupt must stop watching cleanly:\n%s", pane)
	}
}

func TestWatchPrintsPlainOutputWhenNotATerminal(t *testing.T) {
	ns := "watch-plain"
	fixture(t, ns)
	var out bytes.Buffer
	cmd := exec.Command(plugin, "--kubeconfig", env.Kubeconfig, "watch", "api", "-n", ns)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	setAction(t, ns, v1alpha1.ActionShedAll)
	waitFor(t, "Shedding", func() bool { return phase(t, ns) == v1alpha1.PhaseShedding })
	time.Sleep(500 * time.Millisecond)
	setAction(t, ns, v1alpha1.ActionNormal)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("watch did not return at rest:\n%s", out.String())
	}
	text := out.String()
	if strings.Contains(text, "\x1b[") {
		t.Fatalf("terminal control codes in piped output:\n%q", text)
	}
	for _, want := range []string{"Phase:            Normal", "Phase:            Shedding", "trafficpolicy/api is at rest (Normal)"} {
		if !strings.Contains(text, want) {
			t.Errorf("piped output lacks %q:\n%s", want, text)
		}
	}
}
