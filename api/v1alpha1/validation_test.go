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
	"floodgate.dev/floodgate/internal/crdcheck"
	"floodgate.dev/floodgate/internal/scheme"
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
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme.New()})
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
		// Durations: never negative, never absurd, always a sentence (not a CEL type conversion error).
		{"negative releaseAfter", func(s map[string]any) { s["autoscaling"] = map[string]any{"releaseAfter": "-10m"} },
			"releaseAfter must be between 0s and 24h, written like 5m"},
		{"negative staleAfter", func(s map[string]any) { s["staleAfter"] = "-1h" }, "staleAfter must be between 1m and 168h, written like 2h"},
		{"a hold of 100000000h", func(s map[string]any) { step(s, 0)["hold"] = "100000000h" },
			"hold must be at least 1s and at most 24h, written like 5m or 1h30m"},
		{"a hold of 25h", func(s map[string]any) { step(s, 0)["hold"] = "25h" }, "hold must be at least 1s and at most 24h"},
		{"a hold in days", func(s map[string]any) { step(s, 0)["hold"] = "1d" }, "hold must be at least 1s and at most 24h"},
		{"a hold past Go's longest duration", func(s map[string]any) { step(s, 0)["hold"] = "9999999h" }, "hold must be at least 1s and at most 24h"},
		{"a hold summing past Go's longest duration", func(s map[string]any) { step(s, 0)["hold"] = "999999h999999h9h" },
			"hold must be at least 1s and at most 24h"},
		{"a staleAfter past Go's longest duration", func(s map[string]any) {
			s["staleAfter"] = "9999999h"
		}, "staleAfter must be between 1m and 168h"},
		{"gate interval under 1s", func(s map[string]any) {
			s["ramp"].(map[string]any)["gate"] = map[string]any{"interval": "300ms"}
		}, "interval must be between 1s and 1h, written like 15s"},
		{"passFor shorter than interval", func(s map[string]any) {
			s["ramp"].(map[string]any)["gate"] = map[string]any{"interval": "20s", "passFor": "10s"}
		}, "passFor must be at least interval"},
		{"a webhook timeout of 55s", func(s map[string]any) {
			step(s, 0)["gates"] = []any{map[string]any{"name": "confirm", "webhook": map[string]any{"url": "http://checker.sre/confirm", "timeout": "55s"}}}
		}, "timeout must be between 1ms and 30s, written like 5s"},
		{"a negative maxAge", func(s map[string]any) {
			step(s, 0)["gates"] = []any{map[string]any{"name": "errors", "prometheus": map[string]any{
				"address": "http://prometheus.monitoring:9090", "query": "up", "operator": "LessThan", "threshold": "1", "maxAge": "-2m"}}}
		}, "maxAge must be between 1s and 24h, written like 2m"},
		// Confirmation by probes.
		{"a confirm address with a path", func(s map[string]any) { s["confirm"] = map[string]any{"address": "http://traefik.traefik.svc/healthz"} },
			"confirm.address must be http:// or https:// and a host with an optional port, and nothing else"},
		{"a confirm address with credentials", func(s map[string]any) { s["confirm"] = map[string]any{"address": "http://user:pw@traefik"} },
			"confirm.address must be http:// or https://"},
		{"a confirm address that is not http", func(s map[string]any) { s["confirm"] = map[string]any{"address": "tcp://traefik:80"} },
			"confirm.address must be http:// or https://"},
		{"a confirm interval of 100ms", func(s map[string]any) { s["confirm"] = map[string]any{"interval": "100ms"} },
			"confirm.interval must be between 500ms and 5m, written like 1s"},
		{"a confirm grace of 1h", func(s map[string]any) { s["confirm"] = map[string]any{"grace": "1h"} },
			"confirm.grace must be between 1s and 5m, written like 10s"},
		{"1000 probes a second", func(s map[string]any) { s["confirm"] = map[string]any{"maxProbesPerSecond": int64(1000)} },
			"should be less than or equal to 100"},
		// Names and URLs.
		{"a target name with a path in it", func(s map[string]any) { s["targetRefs"] = []any{map[string]any{"kind": "Ingress", "name": "../x"}} },
			"a target's name must be a Kubernetes object name: lowercase letters, digits, '-' and '.'"},
		{"an autoscaler name in capitals", func(s map[string]any) { s["autoscalerRefs"] = []any{map[string]any{"name": "API"}} },
			"an autoscaler's name must be a Kubernetes object name"},
		{"a redirect with a space", func(s map[string]any) { redirect(s, "https://status.example.com/we are down") },
			"redirectURL must be an absolute https:// URL without user info"},
		{"a redirect with user info", func(s map[string]any) { redirect(s, "https://status.example.com@evil.com/") },
			"redirectURL must be an absolute https:// URL without user info"},
		{"a redirect with a quote", func(s map[string]any) { redirect(s, `https://status.example.com/"onload=`) },
			"redirectURL must be an absolute https:// URL without user info"},
		{"a redirect with a fragment", func(s map[string]any) { redirect(s, "https://status.example.com/#x") },
			"redirectURL must be an absolute https:// URL without user info"},
		// What a data plane would refuse, refused at apply (Gateway API's RequestRedirect rules).
		{"a redirect to port 99999", func(s map[string]any) { redirect(s, "https://status.example.com:99999/") },
			"redirectURL's port must be between 1 and 65535"},
		{"a redirect to port 0", func(s map[string]any) { redirect(s, "https://status.example.com:0/") },
			"redirectURL's port must be between 1 and 65535"},
		{"a redirect to an upper-case host", func(s map[string]any) { redirect(s, "https://Status.Example.com/") },
			"redirectURL's host must be a lower-case DNS name"},
		{"a redirect with a 1,500-character path", func(s map[string]any) { redirect(s, "https://status.example.com/"+strings.Repeat("a", 1500)) },
			"redirectURL's path must be at most 1024 characters"},
		// A selector apimachinery would not parse, refused at apply.
		{"a selector operator Bogus", func(s map[string]any) {
			s["targetSelector"] = map[string]any{"matchExpressions": []any{map[string]any{"key": "tier", "operator": "Bogus", "values": []any{"edge"}}}}
		}, `Unsupported value: "Bogus": supported values: "In", "NotIn", "Exists", "DoesNotExist"`},
		{"a selector key with a space", func(s map[string]any) {
			s["targetSelector"] = map[string]any{"matchExpressions": []any{map[string]any{"key": "a b/c", "operator": "Exists"}}}
		}, "targetSelector.matchExpressions key must be a label key"},
		{"a selector In without values", func(s map[string]any) {
			s["targetSelector"] = map[string]any{"matchExpressions": []any{map[string]any{"key": "tier", "operator": "In"}}}
		}, "operators In and NotIn need values, Exists and DoesNotExist take none"},
		{"a selector Exists with values", func(s map[string]any) {
			s["targetSelector"] = map[string]any{"matchExpressions": []any{map[string]any{"key": "tier", "operator": "Exists", "values": []any{"x"}}}}
		}, "operators In and NotIn need values, Exists and DoesNotExist take none"},
		{"a selector value with a slash", func(s map[string]any) {
			s["targetSelector"] = map[string]any{"matchExpressions": []any{map[string]any{"key": "tier", "operator": "In", "values": []any{"a/b"}}}}
		}, "targetSelector.matchExpressions values must be label values"},
		{"a matchLabels key with a space", func(s map[string]any) {
			s["targetSelector"] = map[string]any{"matchLabels": map[string]any{"a b": "x"}}
		}, "targetSelector.matchLabels keys must be label keys"},
	}
	offline, err := crdcheck.TrafficPolicy()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := sample(t)
			spec := u.Object["spec"].(map[string]any)
			c.edit(spec)
			inProcess := u.DeepCopy()
			err := k8s.Create(context.Background(), u, client.DryRunAll)
			if err == nil {
				t.Fatal("the API server accepted it")
			}
			if !strings.Contains(err.Error(), c.wants) {
				t.Fatalf("message does not say %q:\n%v", c.wants, err)
			}
			// A sentence only: never a CEL evaluation or type conversion error beside it.
			for _, noise := range []string{"conversion", "overflow", "error evaluating", "no such overload"} {
				if strings.Contains(err.Error(), noise) {
					t.Fatalf("the message says %q besides the sentence:\n%v", noise, err)
				}
			}
			// The in-process check the fuzz targets use answers as the API server does.
			if errs := offline.Check(context.Background(), inProcess.Object); !strings.Contains(errs.ToAggregate().Error(), c.wants) {
				t.Fatalf("crdcheck does not say %q: %v", c.wants, errs)
			}
		})
	}
}

func step(spec map[string]any, i int) map[string]any {
	return spec["ramp"].(map[string]any)["steps"].([]any)[i].(map[string]any)
}

func shed(spec map[string]any) map[string]any { return spec["shed"].(map[string]any) }

func redirect(spec map[string]any, url string) {
	shed(spec)["redirectURL"] = url
	delete(shed(spec), "statusCode")
}

func TestGoodInputIsAccepted(t *testing.T) {
	offline, err := crdcheck.TrafficPolicy()
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(map[string]any){
		"a redirect with a path and a query": func(s map[string]any) { redirect(s, "https://status.example.com:8443/incident/42?lang=en&x=1") },
		"hold of 1h30m and 1.5s":             func(s map[string]any) { step(s, 0)["hold"] = "1h30m"; step(s, 1)["hold"] = "1.5s" },
		"releaseAfter 0s, staleAfter 168h": func(s map[string]any) {
			s["autoscaling"] = map[string]any{"releaseAfter": "0s"}
			s["staleAfter"] = "168h"
		},
		"a redirect to port 8443 with a long path": func(s map[string]any) {
			redirect(s, "https://status.example.com:8443/"+strings.Repeat("a", 1000))
		},
		"a selector every operator of which apimachinery takes": func(s map[string]any) {
			s["targetSelector"] = map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "api", "tier": ""},
				"matchExpressions": []any{
					map[string]any{"key": "example.com/tier", "operator": "In", "values": []any{"edge", "api_v2.x"}},
					map[string]any{"key": "canary", "operator": "DoesNotExist"},
					map[string]any{"key": "team", "operator": "NotIn", "values": []any{"x"}},
					map[string]any{"key": "zone", "operator": "Exists"},
				}}
		},
		"a target name with dots": func(s map[string]any) {
			s["targetRefs"] = []any{map[string]any{"kind": "Ingress", "name": "api.v2-gateway"}}
		},
		"confirmation through Traefik's Service, every knob": func(s map[string]any) {
			s["confirm"] = map[string]any{"address": "http://traefik.traefik.svc.cluster.local:8000/", "interval": "2s", "grace": "30s",
				"probeApplication": true, "maxProbesPerSecond": int64(20)}
		},
		"confirmation with the manager's address, over https on an IPv6 literal": func(s map[string]any) {
			s["confirm"] = map[string]any{"interval": "500ms"}
			s["confirm"].(map[string]any)["address"] = "https://[fd00::1]:8443"
		},
		"passFor 30s by default, interval 30s": func(s map[string]any) {
			s["ramp"].(map[string]any)["gate"] = map[string]any{"interval": "30s"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			u := sample(t)
			edit(u.Object["spec"].(map[string]any))
			inProcess := u.DeepCopy()
			if err := k8s.Create(context.Background(), u, client.DryRunAll); err != nil {
				t.Fatalf("refused: %v", err)
			}
			if errs := offline.Check(context.Background(), inProcess.Object); len(errs) > 0 {
				t.Fatalf("crdcheck refuses what the API server accepts: %v", errs)
			}
		})
	}
}
