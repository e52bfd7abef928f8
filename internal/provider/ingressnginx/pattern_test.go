package ingressnginx

import (
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
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
