package confirm

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/shed"
)

func policyWith(confirm *v1alpha1.ConfirmSpec, missing v1alpha1.MissingRegion) *v1alpha1.TrafficPolicy {
	return &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: "api"},
		Spec: v1alpha1.TrafficPolicySpec{RegionHeader: "CF-IPCountry", MissingRegion: missing, Confirm: confirm}}
}

var web = Target{Name: "Ingress/web", DataPlanes: []string{"traefik"}, Routes: []shed.Route{
	{Host: "api.example.com", Path: "/"}, {Host: "api.example.com", Path: "/v1", Exact: true}, {Host: "*.example.com", Path: "/"}, {Path: ""},
}}

// kinds are each probe's host, path, region and expectation, as one line each.
func kinds(p Plan) []string {
	var out []string
	for _, pr := range p.Probes {
		out = append(out, pr.Address+" "+pr.String()+" → "+string(pr.Expect))
	}
	return out
}

func TestAPlanProbesEveryRouteOfEveryTargetWhereTheLeverSendsIt(t *testing.T) {
	app := &v1alpha1.ConfirmSpec{Address: "http://proxy:80/", ProbeApplication: true}
	answer := &shed.Response{StatusCode: 503}
	for _, tc := range []struct {
		name     string
		policy   *v1alpha1.TrafficPolicy
		knobs    knobs.Knobs
		answer   *shed.Response
		defaults map[string]string
		keyed    bool
		want     []string
		skipped  string
		none     string
	}{{
		name: "ShedAll: one shed probe per host and path, wildcards and catch-alls under reserved names", policy: policyWith(app, ""),
		knobs: knobs.ShedAll(), answer: answer, keyed: true,
		want: []string{"http://proxy:80 GET api.example.com/ → shed", "http://proxy:80 GET api.example.com/v1 → shed",
			"http://proxy:80 GET floodgate-probe.example.com/ → shed", "http://proxy:80 GET floodgate-probe.invalid/ → shed"},
	}, {
		name: "an allowlist: an allowed region, a refused one and no header", policy: policyWith(app, v1alpha1.MissingRegionShed),
		knobs: knobs.New(true, []string{"AU", "ZZ"}, 0, 0), answer: answer, keyed: true,
		want: []string{"http://proxy:80 GET api.example.com/ with CF-IPCountry: AU → admitted", "http://proxy:80 GET api.example.com/ with CF-IPCountry: XX → shed",
			"http://proxy:80 GET api.example.com/ without CF-IPCountry → shed"},
	}, {
		name: "a share admitted: either landing is right", policy: policyWith(app, ""),
		knobs: knobs.New(false, nil, 0, 30), answer: answer, keyed: true,
		want: []string{"http://proxy:80 GET api.example.com/ → shed or admitted"},
	}, {
		name: "without probeApplication, what the lever admits is not probed", policy: policyWith(&v1alpha1.ConfirmSpec{Address: "http://proxy"}, ""),
		knobs: knobs.New(true, []string{"AU"}, 0, 0), answer: answer, keyed: true,
		want:    []string{"http://proxy GET api.example.com/ with CF-IPCountry: ZZ → shed"},
		skipped: "what the lever admits is not probed",
	}, {
		name: "Normal without probeApplication: nothing", policy: policyWith(&v1alpha1.ConfirmSpec{Address: "http://proxy"}, ""),
		answer: answer, keyed: true, none: "what the lever admits is not probed",
	}, {
		name: "a redirect is expected wherever it is answered", policy: policyWith(app, ""),
		knobs: knobs.ShedAll(), answer: &shed.Response{StatusCode: 302, Redirect: "https://status.example.com"}, keyed: true,
		want: []string{"http://proxy:80 GET api.example.com/ → redirect"},
	}, {
		name: "the manager's address for the target's data plane", policy: policyWith(nil, ""),
		knobs: knobs.ShedAll(), answer: answer, keyed: true, defaults: map[string]string{"traefik": "http://traefik.traefik.svc"},
		want: []string{"http://traefik.traefik.svc GET api.example.com/ → shed"},
	}, {
		name: "no address anywhere", policy: policyWith(nil, ""), knobs: knobs.ShedAll(), answer: answer, keyed: true,
		defaults: map[string]string{"ingress-nginx": "http://nginx"}, none: "Ingress/web: no data plane address to probe",
	}, {
		name: "no probe key", policy: policyWith(app, ""), knobs: knobs.ShedAll(), answer: answer,
		none: "the manager has no probe key",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			target := web
			if len(tc.want) == 1 || tc.none != "" || tc.name == "an allowlist: an allowed region, a refused one and no header" {
				target.Routes = target.Routes[:1]
			}
			plan := MakePlan(Input{Policy: tc.policy, Knobs: tc.knobs, Answer: tc.answer, Targets: []Target{target}, Defaults: tc.defaults, Keyed: tc.keyed})
			if got := kinds(plan); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("probes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if !strings.Contains(plan.Skipped, tc.skipped) || tc.skipped == "" && plan.Skipped != "" {
				t.Errorf("skipped %q, want it to say %q", plan.Skipped, tc.skipped)
			}
			if !strings.Contains(plan.NotProbed, tc.none) || tc.none == "" && plan.NotProbed != "" {
				t.Errorf("not probed %q, want it to say %q", plan.NotProbed, tc.none)
			}
		})
	}
}

func TestWhereAProbeLands(t *testing.T) {
	shedProbe := Probe{Expect: ExpectShed, Code: 503}
	shedBy := func(policy string, gen int64) Answer {
		return Answer{Code: 503, Shed: true, Policy: policy, Generation: gen}
	}
	for _, tc := range []struct {
		name  string
		probe Probe
		got   Answer
		lands bool
	}{
		{"shed by this policy at its generation", shedProbe, shedBy("edge/api", 4), true},
		{"shed by this policy at a later generation", shedProbe, shedBy("edge/api", 5), true},
		{"shed by an answer made before the lever", shedProbe, shedBy("edge/api", 3), false},
		{"shed by another policy", shedProbe, shedBy("other/api", 4), false},
		{"the shed server did not recognise the probe", shedProbe, Answer{Code: 503, Shed: true}, false},
		{"the proxy's own 503", shedProbe, Answer{Code: 503}, false},
		{"the application", shedProbe, Answer{Code: 200}, false},
		{"no answer", shedProbe, Answer{Err: "connection refused"}, false},
		{"another status code", shedProbe, Answer{Code: 429, Shed: true, Policy: "edge/api", Generation: 4}, false},
		{"admitted", Probe{Expect: ExpectAdmitted}, Answer{Code: 200}, true},
		{"admitted, the application's 401", Probe{Expect: ExpectAdmitted}, Answer{Code: 401}, true},
		{"admitted, but a 404: a proxy that does not route the host", Probe{Expect: ExpectAdmitted}, Answer{Code: 404}, false},
		{"admitted, but a 421", Probe{Expect: ExpectAdmitted}, Answer{Code: 421}, false},
		{"admitted, but a 502", Probe{Expect: ExpectAdmitted}, Answer{Code: 502}, false},
		{"admitted, but shed", Probe{Expect: ExpectAdmitted}, shedBy("edge/api", 4), false},
		{"admitted, a 429 without a limit", Probe{Expect: ExpectAdmitted}, Answer{Code: 429}, false},
		{"admitted, the proxy's 429 under a limit", Probe{Expect: ExpectAdmitted, Limited: true}, Answer{Code: 429}, true},
		{"either, shed", Probe{Expect: ExpectEither, Code: 503}, shedBy("edge/api", 4), true},
		{"either, admitted", Probe{Expect: ExpectEither, Code: 503}, Answer{Code: 200}, true},
		{"either, the proxy's 503", Probe{Expect: ExpectEither, Code: 503}, Answer{Code: 503}, false},
		{"redirect", Probe{Expect: ExpectRedirect, Location: "https://s"}, Answer{Code: 302, Location: "https://s"}, true},
		{"redirect elsewhere", Probe{Expect: ExpectRedirect, Location: "https://s"}, Answer{Code: 302, Location: "https://t"}, false},
	} {
		if got := Lands(tc.probe, tc.got, "edge/api", 4); got != tc.lands {
			t.Errorf("%s: lands %v, want %v (%s)", tc.name, got, tc.lands, tc.got)
		}
	}
}

func TestParseAddresses(t *testing.T) {
	got, err := ParseAddresses(" traefik=http://traefik.traefik.svc:80 , ingress-nginx=https://nginx/")
	if err != nil || got["traefik"] != "http://traefik.traefik.svc:80" || got["ingress-nginx"] != "https://nginx/" || len(got) != 2 {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"traefik", "traefik=ftp://x", "traefik=http://x/path", "=http://x", "traefik=http://"} {
		if _, err := ParseAddresses(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
