package ingressnginx

import (
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/language"

	"floodgate.dev/floodgate/internal/knobs"
)

// validatorChars is the character set ingress-nginx's annotation validator accepts for
// canary-by-header-pattern (parser.IsValidRegex: alphanumerics, "-._~/:" and the regex
// characters "^$[](){}*+?|&=\"); an invalid pattern is logged and dropped by the controller.
var validatorChars = regexp.MustCompile(`^[/\-\._~a-zA-Z0-9/:\^\$\[\]\(\)\{\}\*\+\?\|&=\\]*$`)

var allowlists = [][]string{
	{"AU"},
	{"AU", "NZ", "SG"},
	{"A", "AU", "AUS"},
	{"US", "US-CA", "US-NY"},
	{"T1", "XX", "NZ"},
	{"Z"},
}

// probes are header values, many of them near misses of the allowed codes.
var probes = []string{
	"", "A", "AU", "AUS", "AUST", "AUX", "AX", "XA", "NZ", "NZZ", "N", "SG", "SGP", "S",
	"US", "US-", "US-CA", "US-CAX", "US-C", "US-NY", "US-TX", "USCA", "T1", "T", "T11",
	"XX", "X", "XXX", "Z", "ZZ", "au", "nz", "A U", "AU ", " AU", "AU\tX", "-", "--", "0",
	"AU,NZ", "AU|NZ", "(AU)", ".*", "ÅU", "AU-", "A-U",
}

func TestComplementPatternPassesTheIngressNginxValidator(t *testing.T) {
	for _, allow := range allowlists {
		p := ComplementPattern(allow)
		if !validatorChars.MatchString(p) {
			t.Errorf("%v: pattern %q has characters ingress-nginx's validator rejects", allow, p)
		}
	}
}

func TestComplementPatternExactValue(t *testing.T) {
	got := ComplementPattern([]string{"NZ", "AU"})
	want := `^([^AN].*|A([^U].*|U(.+))?|N([^Z].*|Z(.+))?)?$`
	if got != want {
		t.Fatalf("pattern\n got %s\nwant %s", got, want)
	}
}

func TestComplementPatternMatchesExactlyTheOtherRegionsInGoRegexp(t *testing.T) {
	// Traefik turns the same annotation into a Go regexp.
	for _, allow := range allowlists {
		re := regexp.MustCompile(ComplementPattern(allow))
		for _, v := range probes {
			if got, want := re.MatchString(v), !slices.Contains(allow, v); got != want {
				t.Errorf("%v: Go regexp says shed(%q)=%v, want %v", allow, v, got, want)
			}
		}
	}
}

func TestComplementPatternMatchesExactlyTheOtherRegionsInPCRE(t *testing.T) {
	// ingress-nginx matches canary-by-header-pattern with PCRE (ngx.re.match) at request time.
	if _, err := exec.LookPath("pcre2grep"); err != nil {
		t.Fatal("pcre2grep is missing: run hack/ensure-debs.sh pcre2grep=pcre2-utils (make test does)")
	}
	for _, allow := range allowlists {
		pattern := ComplementPattern(allow)
		lines := []string{}
		for _, v := range probes {
			if !strings.Contains(v, "\n") {
				lines = append(lines, v)
			}
		}
		cmd := exec.Command("pcre2grep", "-n", "-u", pattern)
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		out, err := cmd.Output()
		if err != nil && cmd.ProcessState.ExitCode() > 1 {
			t.Fatalf("%v: pcre2grep failed on %q: %v", allow, pattern, err)
		}
		matched := map[int]bool{}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var n int
			if _, err := fmt.Sscanf(l, "%d:", &n); err == nil {
				matched[n-1] = true
			}
		}
		for i, v := range lines {
			if got, want := matched[i], !slices.Contains(allow, v); got != want {
				t.Errorf("%v: PCRE says shed(%q)=%v, want %v", allow, v, got, want)
			}
		}
	}
}

func TestComplementPatternForEveryCountryStaysWithinTheValidator(t *testing.T) {
	var all []string
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			all = append(all, string([]rune{a, b}))
		}
	}
	p := ComplementPattern(all[:300])
	if !validatorChars.MatchString(p) {
		t.Fatal("a 300-region pattern must pass the validator")
	}
	re := regexp.MustCompile(p)
	if re.MatchString("AA") || re.MatchString("LN") || !re.MatchString("ZZ") || !re.MatchString("AAA") {
		t.Fatal("300-region pattern does not separate allowed from others")
	}
}

// isoCountries are the ISO 3166-1 alpha-2 country codes, as golang.org/x/text knows them.
func isoCountries(t *testing.T) []string {
	var out []string
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			if r, err := language.ParseRegion(string([]rune{a, b})); err == nil && r.IsCountry() && r.String() == string([]rune{a, b}) {
				out = append(out, r.String())
			}
		}
	}
	if len(out) < 240 {
		t.Fatalf("only %d country codes", len(out))
	}
	return out
}

func TestEveryCountryFitsWellUnderTheCap(t *testing.T) {
	all := isoCountries(t)
	p := ComplementPattern(all)
	if len(p) > MaxPatternBytes/2 {
		t.Fatalf("%d countries make %d bytes", len(all), len(p))
	}
	if RegionsThatFit(all) != len(all) {
		t.Fatalf("RegionsThatFit(%d countries) = %d", len(all), RegionsThatFit(all))
	}
	pcreAgrees(t, all, append(slices.Clone(probes), all[:40]...))
}

// longestAllowed is an allowlist of 16-character codes whose pattern is as long as the cap allows.
func longestAllowed() []string {
	var codes []string
	for i := 0; ; i++ {
		code := fmt.Sprintf("%c%c-%013d", 'A'+i%26, 'A'+(i*7)%26, (i*7919)%9999999999999)
		if len(ComplementPattern(append(codes, code))) > MaxPatternBytes {
			return codes
		}
		codes = append(codes, code)
	}
}

func TestTheLongestAllowedPatternCompilesInPCREAndGoAndMatchesExactly(t *testing.T) {
	allowed := longestAllowed()
	p := ComplementPattern(allowed)
	if len(p) > MaxPatternBytes || len(p) < MaxPatternBytes*9/10 {
		t.Fatalf("the longest allowlist makes %d bytes", len(p))
	}
	if !validatorChars.MatchString(p) {
		t.Fatal("the longest pattern must pass ingress-nginx's validator")
	}
	samples := append(slices.Clone(probes), allowed[0], allowed[len(allowed)-1], allowed[len(allowed)/2]+"X", allowed[3][:10])
	re := regexp.MustCompile(p)
	for _, v := range samples {
		if got, want := re.MatchString(v), !slices.Contains(allowed, v); got != want {
			t.Errorf("Go regexp says shed(%q)=%v, want %v", v, got, want)
		}
	}
	pcreAgrees(t, allowed, samples)

	one := append(slices.Clone(allowed), "ZZ-9999999999999")
	msg := Unsupported(policy(), nil, knobs.New(true, one, 0, 0))
	want := fmt.Sprintf("an allowlist of %d regions makes a canary-by-header-pattern of", len(one))
	if !strings.HasPrefix(msg, want) || !strings.Contains(msg, fmt.Sprintf(": %d of these regions fit", RegionsThatFit(one))) {
		t.Fatalf("one region more is refused, saying how many fit: %q", msg)
	}
	if RegionsThatFit(one) < len(allowed)-1 || RegionsThatFit(one) > len(allowed) {
		t.Fatalf("RegionsThatFit = %d for %d codes that fit and one more", RegionsThatFit(one), len(allowed))
	}
}

// pcreAgrees checks with real PCRE (pcre2grep) that the pattern of allowed sheds exactly the
// samples that are not allowed.
func pcreAgrees(t *testing.T, allowed, samples []string) {
	t.Helper()
	pattern := ComplementPattern(allowed)
	cmd := exec.Command("pcre2grep", "-n", "-u", pattern)
	cmd.Stdin = strings.NewReader(strings.Join(samples, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil && cmd.ProcessState.ExitCode() > 1 {
		t.Fatalf("pcre2grep failed on a %d-byte pattern: %v", len(pattern), err)
	}
	matched := map[int]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var n int
		if _, err := fmt.Sscanf(l, "%d:", &n); err == nil {
			matched[n-1] = true
		}
	}
	for i, v := range samples {
		if got, want := matched[i], !slices.Contains(allowed, v); got != want {
			t.Errorf("PCRE says shed(%q)=%v, want %v", v, got, want)
		}
	}
}
