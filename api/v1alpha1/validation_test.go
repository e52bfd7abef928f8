package v1alpha1_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/manager"
)

// These tests send policies to a real API server with the generated CRD: what a responder's
// `kubectl apply` would get back.
var (
	k8s        client.Client
	cp         *controlplane.ControlPlane
	kubeconfig string
)

func TestMain(m *testing.M) {
	var err error
	cp, err = controlplane.Start()
	if err != nil {
		panic(err)
	}
	k8s, err = client.New(cp.Config, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		panic(err)
	}
	dir, _ := os.MkdirTemp("", "floodgate-validation")
	if kubeconfig, err = cp.Kubeconfig(dir); err != nil {
		panic(err)
	}
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "edge"}}); err != nil {
		panic(err)
	}
	code := m.Run()
	_ = cp.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func sample(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "traffic_v1alpha1_trafficpolicy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestTheSampleAppliesAsWrittenWithKubectl(t *testing.T) {
	out, err := exec.Command(cp.Kubectl(), "--kubeconfig", kubeconfig, "apply", "--dry-run=server",
		"-f", filepath.Join("..", "..", "config", "samples", "traffic_v1alpha1_trafficpolicy.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply of the sample failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "trafficpolicy.traffic.floodgate.dev/api-gateway created (server dry run)") {
		t.Fatalf("unexpected kubectl output: %s", out)
	}
}

func TestDefaultsAreFilledIn(t *testing.T) {
	u := sample(t)
	u.SetName("defaults")
	unstructured.RemoveNestedField(u.Object, "spec", "shed")
	unstructured.RemoveNestedField(u.Object, "spec", "regionHeader")
	unstructured.RemoveNestedField(u.Object, "spec", "missingRegion")
	unstructured.RemoveNestedField(u.Object, "spec", "action")
	if err := k8s.Create(context.Background(), u, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{
		"spec.shed.statusCode":        int64(503),
		"spec.shed.retryAfterSeconds": int64(120),
		"spec.regionHeader":           "CF-IPCountry",
		"spec.missingRegion":          "Admit",
		"spec.action":                 "Normal",
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(u.Object, strings.Split(path, ".")...)
		if got != want {
			t.Errorf("%s defaulted to %v, want %v", path, got, want)
		}
	}
}

func TestBadInputIsRejectedWithAMessageAResponderUnderstands(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(spec map[string]any)
		wants string
	}{
		{"rate of zero", func(s map[string]any) { step(s, 0)["perClientRequestsPerSecond"] = int64(0) },
			"perClientRequestsPerSecond: Invalid value: 0: spec.ramp.steps[0].perClientRequestsPerSecond in body should be greater than or equal to 1"},
		{"negative rate", func(s map[string]any) { step(s, 1)["perClientRequestsPerSecond"] = int64(-5) },
			"should be greater than or equal to 1"},
		{"admitPercent 0", func(s map[string]any) { step(s, 2)["admitPercent"] = int64(0) },
			"admitPercent in body should be greater than or equal to 1"},
		{"admitPercent 101", func(s map[string]any) { step(s, 2)["admitPercent"] = int64(101) },
			"admitPercent in body should be less than or equal to 100"},
		{"Ramp without steps", func(s map[string]any) { s["action"] = "Ramp"; delete(s, "ramp") },
			"action Ramp needs at least one step in spec.ramp.steps"},
		{"duplicate targets", func(s map[string]any) {
			s["targetRefs"] = []any{map[string]any{"kind": "Ingress", "name": "a"}, map[string]any{"kind": "Ingress", "name": "a"}}
		}, "each target may be listed only once in targetRefs"},
		{"duplicate autoscalers", func(s map[string]any) {
			s["autoscalerRefs"] = []any{map[string]any{"name": "a"}, map[string]any{"name": "a"}}
		}, "each autoscaler may be listed only once in autoscalerRefs"},
		{"hold under 1s", func(s map[string]any) { step(s, 0)["hold"] = "500ms" }, "hold must be at least 1s"},
		{"status code 302", func(s map[string]any) { shed(s)["statusCode"] = int64(302) },
			"statusCode must be an HTTP error status between 400 and 599"},
		{"status code 600", func(s map[string]any) { shed(s)["statusCode"] = int64(600) },
			"statusCode must be an HTTP error status between 400 and 599"},
		{"plain http redirect", func(s map[string]any) {
			shed(s)["redirectURL"] = "http://status.example.com"
			delete(shed(s), "statusCode")
		}, "redirectURL must be an absolute https:// URL"},
		{"redirect and a status code", func(s map[string]any) {
			shed(s)["redirectURL"] = "https://status.example.com"
			shed(s)["statusCode"] = int64(429)
		},
			"set either statusCode or redirectURL, not both"},
		{"lowercase region", func(s map[string]any) { s["allowRegions"] = []any{"au"} },
			"region codes are 1 to 16 characters of A-Z, 0-9 and '-'"},
		{"region with a regex in it", func(s map[string]any) { step(s, 0)["allowRegions"] = []any{"AU|.*"} },
			"region codes are 1 to 16 characters of A-Z, 0-9 and '-'"},
		{"header name with a space", func(s map[string]any) { s["regionHeader"] = "CF IPCountry" },
			"regionHeader must be an HTTP header name of letters, digits and '-'"},
		{"unknown action", func(s map[string]any) { s["action"] = "Panic" },
			`spec.action: Unsupported value: "Panic": supported values: "Normal", "ShedAll", "Ramp"`},
		{"unknown target kind", func(s map[string]any) { s["targetRefs"] = []any{map[string]any{"kind": "Service", "name": "a"}} },
			`Unsupported value: "Service": supported values: "Ingress"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := sample(t)
			spec := u.Object["spec"].(map[string]any)
			c.edit(spec)
			err := k8s.Create(context.Background(), u, client.DryRunAll)
			if err == nil {
				t.Fatal("the API server accepted it")
			}
			if !strings.Contains(err.Error(), c.wants) {
				t.Fatalf("message does not say %q:\n%v", c.wants, err)
			}
		})
	}
}

func step(spec map[string]any, i int) map[string]any {
	return spec["ramp"].(map[string]any)["steps"].([]any)[i].(map[string]any)
}

func shed(spec map[string]any) map[string]any { return spec["shed"].(map[string]any) }
