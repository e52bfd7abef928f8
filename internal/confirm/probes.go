// Package confirm confirms a lever in the data plane: marked probe requests, sent through the
// proxy apart from the reconcile pass, show where requests land. The pass says what to probe and
// what each probe should find (Plan, pure); the Confirmer sends them, bounded per policy, and
// keeps what came back where the pass reads it; Condition makes that the Confirmed condition.
package confirm

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/shed"
)

// Expect is where a probe should land.
type Expect string

const (
	// ExpectShed: the shed server answers it for this policy, with the policy's status code.
	ExpectShed Expect = "shed"
	// ExpectRedirect: something answers it with the policy's redirect.
	ExpectRedirect Expect = "redirect"
	// ExpectAdmitted: it reaches something other than the shed server, and neither a 5xx nor a
	// proxy's answer for a host it does not route (404, 421) comes back.
	ExpectAdmitted Expect = "admitted"
	// ExpectEither: a share is admitted (admitPercent): shed or admitted both are right.
	ExpectEither Expect = "shed or admitted"
)

// Probe is one marked request and where it should land.
type Probe struct {
	// Target is the target the route belongs to, as status names it ("Ingress/web").
	Target string
	// Address is the data plane's entry the probe is sent to (scheme, host, port).
	Address string
	// Host and Path are the route's.
	Host, Path string
	// Header and Region are the region header and its value ("" sends none).
	Header, Region string
	Expect         Expect
	// Code is the shed answer's status code (ExpectShed, ExpectEither).
	Code int
	// Location is the redirect (ExpectRedirect).
	Location string
	// Limited: a per-client limit is in force, so the proxy's 429 is an admitted answer too.
	Limited bool
}

// String says what the probe sends: "GET api.example.com/v1 with CF-IPCountry: US".
func (p Probe) String() string {
	s := "GET " + p.Host + p.Path
	if p.Header != "" && p.Region != "" {
		s += " with " + p.Header + ": " + p.Region
	} else if p.Header != "" {
		s += " without " + p.Header
	}
	return s
}

// Target is what the pass knows of one target: its name as status says it, the data planes
// that serve it, and the routes it names.
type Target struct {
	Name       string
	DataPlanes []string
	Routes     []shed.Route
}

// Input is what a probe plan is made from.
type Input struct {
	Policy *v1alpha1.TrafficPolicy
	// Knobs are the traffic knobs in force.
	Knobs knobs.Knobs
	// Answer is the policy's shed answer as the cluster allows it (shed.AnswerOf).
	Answer  *shed.Response
	Targets []Target
	// Defaults are the manager's data plane addresses, by data plane (--confirm-address).
	Defaults map[string]string
	// Keyed: the manager has a probe key (without one, no probe can be told from a client).
	Keyed bool
}

// Plan is what to probe for the lever in force: the probes, and when there are none, why.
type Plan struct {
	Probes []Probe
	// NotProbed says why nothing is probed ("" when something is).
	NotProbed string
	// Skipped says what is not probed and why, when some of it is ("" when nothing is).
	Skipped string
}

// Settings of a policy's confirmation, defaulted.
type Settings struct {
	Interval, Grace  time.Duration
	PerSecond        int
	ProbeApplication bool
}

// Defaults of spec.confirm.
const (
	DefaultInterval  = time.Second
	DefaultGrace     = 10 * time.Second
	DefaultPerSecond = 10
)

// DefaultRegionHeader is spec.regionHeader's default (the CRD's).
const DefaultRegionHeader = "CF-IPCountry"

// SettingsOf are a policy's confirmation settings, defaulted.
func SettingsOf(spec v1alpha1.TrafficPolicySpec) Settings {
	s := Settings{Interval: DefaultInterval, Grace: DefaultGrace, PerSecond: DefaultPerSecond}
	if c := spec.Confirm; c != nil {
		if c.Interval != nil && c.Interval.Duration >= 500*time.Millisecond {
			s.Interval = min(c.Interval.Duration, 5*time.Minute)
		}
		if c.Grace != nil && c.Grace.Duration >= time.Second {
			s.Grace = min(c.Grace.Duration, 5*time.Minute)
		}
		if c.MaxProbesPerSecond != nil && *c.MaxProbesPerSecond >= 1 {
			s.PerSecond = int(min(*c.MaxProbesPerSecond, 100))
		}
		s.ProbeApplication = c.ProbeApplication
	}
	return s
}

// probeHost is the Host a probe of a route sends: the route's, a name under a wildcard, or a
// reserved name for a catch-all.
func probeHost(host string) string {
	switch {
	case host == "":
		return "floodgate-probe.invalid"
	case strings.HasPrefix(host, "*."):
		return "floodgate-probe" + host[1:]
	}
	return host
}

// refusedRegion is a region code the allowlist does not hold.
func refusedRegion(allowed []string) string {
	for _, r := range []string{"ZZ", "XX", "QQ", "XZ"} {
		if !slices.Contains(allowed, r) {
			return r
		}
	}
	return "FLOODGATE-PROBE"
}

// MakePlan says what to probe: one probe per target host and path; with an allowlist, one each
// with an allowed region, a refused region and no header. Probes the lever admits reach the
// application and are sent only with spec.confirm.probeApplication.
func MakePlan(in Input) Plan {
	spec := in.Policy.Spec
	settings := SettingsOf(spec)
	if !in.Keyed {
		return Plan{NotProbed: "the manager has no probe key (--probe-key-file), so no probe can be told from a client"}
	}
	k := in.Knobs
	shedProbe := Probe{Expect: ExpectShed, Code: in.Answer.StatusCode}
	if in.Answer.Redirect != "" {
		shedProbe = Probe{Expect: ExpectRedirect, Location: in.Answer.Redirect}
	}
	admitted := Probe{Expect: ExpectAdmitted, Limited: k.PerClientRequestsPerSecond > 0}
	if k.AdmitPercent > 0 && !k.Shed {
		admitted = Probe{Expect: ExpectEither, Code: in.Answer.StatusCode, Limited: admitted.Limited}
	}
	var kinds []Probe // the probes of one route, less its host, path and address
	switch {
	case k.Shed:
		kinds = []Probe{shedProbe}
	case k.RestrictRegions:
		header := spec.RegionHeader
		if header == "" {
			header = DefaultRegionHeader
		}
		allowed, refused, missing := admitted, shedProbe, admitted
		allowed.Header, allowed.Region = header, k.AllowRegions[0]
		refused.Header, refused.Region = header, refusedRegion(k.AllowRegions)
		missing.Header = header
		if spec.MissingRegion == v1alpha1.MissingRegionShed {
			missing = shedProbe
			missing.Header = header
		}
		kinds = []Probe{allowed, refused, missing}
	default:
		kinds = []Probe{admitted}
	}
	var out []Probe
	var noAddress []string
	skippedAdmitted := false
	seen := map[string]bool{}
	for _, t := range in.Targets {
		address := ""
		if spec.Confirm != nil {
			address = strings.TrimSuffix(spec.Confirm.Address, "/")
		}
		for _, dp := range t.DataPlanes {
			if address == "" {
				address = strings.TrimSuffix(in.Defaults[dp], "/")
			}
		}
		if address == "" {
			noAddress = append(noAddress, t.Name)
			continue
		}
		for _, r := range t.Routes {
			path := r.Path
			if path == "" || !strings.HasPrefix(path, "/") {
				path = "/"
			}
			for _, p := range kinds {
				if (p.Expect == ExpectAdmitted || p.Expect == ExpectEither) && !settings.ProbeApplication {
					skippedAdmitted = true
					continue
				}
				p.Target, p.Address, p.Host, p.Path = t.Name, address, probeHost(r.Host), path
				id := p.Address + " " + p.String()
				if seen[id] {
					continue
				}
				seen[id] = true
				out = append(out, p)
			}
		}
	}
	var skipped []string
	if skippedAdmitted {
		skipped = append(skipped, "what the lever admits is not probed (it would reach the application: set spec.confirm.probeApplication)")
	}
	if len(noAddress) > 0 {
		skipped = append(skipped, fmt.Sprintf("%s: no data plane address to probe (spec.confirm.address, or the manager's --confirm-address for its data plane)", strings.Join(noAddress, ", ")))
	}
	plan := Plan{Probes: out, Skipped: strings.Join(skipped, "; ")}
	if len(out) == 0 {
		plan.NotProbed = plan.Skipped
		if plan.NotProbed == "" {
			plan.NotProbed = "the targets name no route to probe"
		}
		plan.Skipped = ""
	}
	return plan
}

// errorCode is whether a status code is one a proxy answers when it cannot serve (an admitted
// probe must not get one).
func errorCode(code int) bool { return code >= http.StatusInternalServerError }

// ParseAddresses reads --confirm-address: comma-separated data-plane=URL pairs, for example
// traefik=http://traefik.traefik.svc:80.
func ParseAddresses(v string) (map[string]string, error) {
	var out map[string]string
	for _, pair := range strings.Split(v, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		dataPlane, address, ok := strings.Cut(pair, "=")
		dataPlane, address = strings.TrimSpace(dataPlane), strings.TrimSpace(address)
		u, err := url.Parse(address)
		if !ok || dataPlane == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			return nil, fmt.Errorf("%q is not data-plane=http(s)://host:port (for example traefik=http://traefik.traefik.svc:80)", pair)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[dataPlane] = address
	}
	return out, nil
}
