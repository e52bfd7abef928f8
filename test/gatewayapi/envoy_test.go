package gatewayapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/internal/scheme"
)

// translation is what Envoy Gateway's translator made of a namespace's objects.
type translation struct {
	// status is the route status the gateway reports.
	status gatewayv1.RouteStatus
	// routes are Envoy's routes for the route's host, in Envoy's order (the first that matches
	// a request takes it).
	routes []envoyRoute
	// backends are, per Envoy cluster, the Services it balances over and their weights.
	backends map[string][]weighted
}

type envoyRoute struct {
	Name  string `json:"name"`
	Match struct {
		Prefix              string `json:"prefix"`
		Path                string `json:"path"`
		PathSeparatedPrefix string `json:"pathSeparatedPrefix"`
		SafeRegex           *struct {
			Regex string `json:"regex"`
		} `json:"safeRegex"`
		Headers []struct {
			Name        string `json:"name"`
			InvertMatch bool   `json:"invertMatch"`
			StringMatch *struct {
				Exact     *string `json:"exact"`
				SafeRegex *struct {
					Regex string `json:"regex"`
				} `json:"safeRegex"`
			} `json:"stringMatch"`
		} `json:"headers"`
	} `json:"match"`
	Route *struct {
		Cluster string `json:"cluster"`
	} `json:"route"`
	Redirect *struct {
		HostRedirect string `json:"hostRedirect"`
		PathRedirect string `json:"pathRedirect"`
	} `json:"redirect"`
	DirectResponse *struct {
		Status int `json:"status"`
	} `json:"directResponse"`
	RequestHeadersToAdd []struct {
		Header struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"header"`
	} `json:"requestHeadersToAdd"`
}

type weighted struct {
	service string
	weight  int
}

// request is a request to the route's host: a path and the region header (nil: absent).
type request struct {
	path   string
	region *string
}

func (r request) String() string {
	if r.region == nil {
		return r.path + " without the region header"
	}
	return fmt.Sprintf("%s with CF-IPCountry %q", r.path, *r.region)
}

// reach says where Envoy sends a request: the Services of the first route that matches it (with
// their weights when more than one), "redirect to HOST/PATH", or "no route".
func (tr translation) reach(t *testing.T, req request) string {
	t.Helper()
	for _, r := range tr.routes {
		if !r.matches(t, req) {
			continue
		}
		switch {
		case r.Redirect != nil:
			return "redirect to " + r.Redirect.HostRedirect + r.Redirect.PathRedirect
		case r.DirectResponse != nil:
			return fmt.Sprintf("direct response %d", r.DirectResponse.Status)
		case r.Route != nil:
			var parts []string
			for _, w := range tr.backends[r.Route.Cluster] {
				parts = append(parts, fmt.Sprintf("%s:%d", w.service, w.weight))
			}
			if len(parts) == 1 {
				parts[0] = strings.Split(parts[0], ":")[0]
			}
			for _, h := range r.RequestHeadersToAdd {
				parts = append(parts, "+"+h.Header.Key)
			}
			return strings.Join(parts, " ")
		}
	}
	return "no route"
}

func (r envoyRoute) matches(t *testing.T, req request) bool {
	m := r.Match
	switch {
	case m.Path != "":
		if req.path != m.Path {
			return false
		}
	case m.PathSeparatedPrefix != "":
		if req.path != m.PathSeparatedPrefix && !strings.HasPrefix(req.path, m.PathSeparatedPrefix+"/") {
			return false
		}
	case m.SafeRegex != nil:
		t.Fatalf("a path regex the test does not model: %s", m.SafeRegex.Regex)
	default:
		if !strings.HasPrefix(req.path, m.Prefix) {
			return false
		}
	}
	for _, h := range m.Headers {
		if !strings.EqualFold(h.Name, "CF-IPCountry") || h.StringMatch == nil {
			t.Fatalf("a header match the test does not model: %+v", h)
		}
		matched := false
		if req.region != nil {
			switch {
			case h.StringMatch.Exact != nil:
				matched = *req.region == *h.StringMatch.Exact
			case h.StringMatch.SafeRegex != nil:
				// Envoy's safe_regex is RE2 and matches the whole value.
				matched = regexp.MustCompile(`^(?:` + h.StringMatch.SafeRegex.Regex + `)$`).MatchString(*req.region)
			}
		}
		if matched == h.InvertMatch {
			return false
		}
	}
	return true
}

// translate runs Envoy Gateway's translator on the namespace's Gateway, its class, its Services
// (each with one ready endpoint) and the HTTPRoute api as stored.
func translate(t *testing.T, ns string) translation {
	t.Helper()
	ctx := context.Background()
	var objs []client.Object
	var class gatewayv1.GatewayClass
	var gw gatewayv1.Gateway
	route := getRoute(t, ns)
	if err := k8s.Get(ctx, client.ObjectKey{Name: "eg"}, &class); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "eg"}, &gw); err != nil {
		t.Fatal(err)
	}
	objs = append(objs, &class, &gw, route)
	var services corev1.ServiceList
	if err := k8s.List(ctx, &services, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range services.Items {
		svc := &services.Items[i]
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			// The shed Service is headless. Envoy Gateway routes a Service by its EndpointSlices
			// (headless ones included) in a cluster; its offline translator routes by clusterIP
			// and finds no endpoints for a headless Service, so the input gives it an address.
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = fmt.Sprintf("10.96.250.%d", i+1), nil
		}
		objs = append(objs, svc, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: svc.Name + "-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("10.0.0.%d", i+1)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(svc.Spec.Ports[0].Name), Port: ptr.To(svc.Spec.Ports[0].Port)}},
		})
	}
	var in bytes.Buffer
	s := scheme.New()
	for _, o := range objs {
		gvk, err := apiutil.GVKForObject(o, s)
		if err != nil {
			t.Fatal(err)
		}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		u["apiVersion"], u["kind"] = gvk.GroupVersion().String(), gvk.Kind
		md := u["metadata"].(map[string]any)
		for _, k := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp"} {
			delete(md, k)
		}
		delete(u, "status")
		b, err := yaml.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		in.WriteString("---\n")
		in.Write(b)
	}
	file := filepath.Join(t.TempDir(), "in.yaml")
	if err := os.WriteFile(file, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(egctl, "x", "translate", "--from", "gateway-api", "--to", "gateway-api,xds", "--type", "all", "-o", "json", "-f", file)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("egctl: %v\n%s\ninput:\n%s", err, stderr.String(), in.String())
	}
	var result struct {
		HTTPRoutes []gatewayv1.HTTPRoute `json:"httpRoutes"`
		XDS        map[string]struct {
			Configs []json.RawMessage `json:"configs"`
		} `json:"xds"`
	}
	if err := json.Unmarshal(out, &result); err != nil {
		t.Fatalf("egctl output: %v", err)
	}
	var tr translation
	if len(result.HTTPRoutes) != 1 {
		t.Fatalf("egctl reported on %d routes", len(result.HTTPRoutes))
	}
	tr.status = result.HTTPRoutes[0].Status.RouteStatus
	tr.backends = map[string][]weighted{}
	host := ns + ".example.com"
	for _, c := range result.XDS[ns+"/eg"].Configs {
		var dump struct {
			Type                   string                              `json:"@type"`
			DynamicRouteConfigs    []struct{ RouteConfig routeConfig } `json:"dynamicRouteConfigs"`
			DynamicEndpointConfigs []struct {
				EndpointConfig struct {
					ClusterName string `json:"clusterName"`
					Endpoints   []struct {
						LoadBalancingWeight int `json:"loadBalancingWeight"`
						Metadata            struct {
							FilterMetadata struct {
								EnvoyGateway struct {
									Resources []struct {
										Name string `json:"name"`
									} `json:"resources"`
								} `json:"envoy-gateway"`
							} `json:"filterMetadata"`
						} `json:"metadata"`
					} `json:"endpoints"`
				} `json:"endpointConfig"`
			} `json:"dynamicEndpointConfigs"`
		}
		if err := json.Unmarshal(c, &dump); err != nil {
			t.Fatal(err)
		}
		for _, rc := range dump.DynamicRouteConfigs {
			for _, vh := range rc.RouteConfig.VirtualHosts {
				if len(vh.Domains) == 1 && vh.Domains[0] == host {
					tr.routes = append(tr.routes, vh.Routes...)
				}
			}
		}
		for _, ec := range dump.DynamicEndpointConfigs {
			for _, e := range ec.EndpointConfig.Endpoints {
				name := "?"
				if rs := e.Metadata.FilterMetadata.EnvoyGateway.Resources; len(rs) > 0 {
					name = rs[0].Name
				}
				tr.backends[ec.EndpointConfig.ClusterName] = append(tr.backends[ec.EndpointConfig.ClusterName], weighted{name, e.LoadBalancingWeight})
			}
		}
	}
	for _, ws := range tr.backends {
		sort.Slice(ws, func(i, j int) bool { return ws[i].service < ws[j].service })
	}
	return tr
}

type routeConfig struct {
	VirtualHosts []struct {
		Domains []string     `json:"domains"`
		Routes  []envoyRoute `json:"routes"`
	} `json:"virtualHosts"`
}

// accepted says whether the gateway accepted the route, with every reference resolved.
func (tr translation) accepted() (bool, string) {
	if len(tr.status.Parents) == 0 {
		return false, "no parent status"
	}
	for _, p := range tr.status.Parents {
		for _, c := range p.Conditions {
			if (c.Type == string(gatewayv1.RouteConditionAccepted) || c.Type == string(gatewayv1.RouteConditionResolvedRefs)) && c.Status != metav1.ConditionTrue {
				return false, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
			}
		}
	}
	return true, ""
}
