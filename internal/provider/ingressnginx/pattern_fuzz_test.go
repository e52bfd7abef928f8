package ingressnginx

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"floodgate.dev/floodgate/api/v1alpha1"
)

var regionCode = regexp.MustCompile(v1alpha1.RegionCodePattern)

// fuzzAllowlist turns fuzz input into an allowlist the CRD would accept: comma-separated codes
// of A-Z, 0-9 and '-', at most 300 of them.
func fuzzAllowlist(codes string) []string {
	var out []string
	for _, c := range strings.Split(codes, ",") {
		if regionCode.MatchString(c) && len(out) < 300 {
			out = append(out, c)
		}
	}
	return out
}

// FuzzComplementPattern: the generated pattern passes ingress-nginx's validator and matches
// exactly the header values that are not allowed (Go's regexp here, real PCRE on the corpus in
// TestTheFuzzCorpusAgreesWithPCRE).
func FuzzComplementPattern(f *testing.F) {
	for _, allow := range allowlists {
		for _, probe := range []string{"", "AU", "AUX", "ZZ", "US-C"} {
			f.Add(strings.Join(allow, ","), probe)
		}
	}
	f.Fuzz(func(t *testing.T, codes, probe string) {
		allowed := fuzzAllowlist(codes)
		if len(allowed) == 0 || strings.ContainsAny(probe, "\n\r") {
			return
		}
		p := ComplementPattern(allowed)
		if !validatorChars.MatchString(p) {
			t.Fatalf("%v: pattern %q has characters ingress-nginx's validator rejects", allowed, p)
		}
		re := regexp.MustCompile(p)
		if got, want := re.MatchString(probe), !slices.Contains(allowed, probe); got != want {
			t.Fatalf("%v: shed(%q)=%v, want %v (pattern %s)", allowed, probe, got, want, p)
		}
		for _, a := range allowed {
			if re.MatchString(a) {
				t.Fatalf("%v: an allowed code %q is shed (pattern %s)", allowed, a, p)
			}
			if re.MatchString(a+"X") == slices.Contains(allowed, a+"X") {
				t.Fatalf("%v: %q must be shed unless allowed (pattern %s)", allowed, a+"X", p)
			}
		}
	})
}

// TestTheFuzzCorpusAgreesWithPCRE runs every corpus entry of FuzzComplementPattern (the seeds
// and what the fuzzer found) through real PCRE, the engine ingress-nginx matches with.
func TestTheFuzzCorpusAgreesWithPCRE(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzComplementPattern", "*"))
	if len(files) == 0 {
		t.Fatal("no corpus in testdata/fuzz/FuzzComplementPattern")
	}
	for _, file := range files {
		args := corpusEntry(t, file)
		allowed := fuzzAllowlist(args[0])
		if len(allowed) == 0 {
			continue
		}
		samples := append(slices.Clone(probes), allowed...)
		if !strings.ContainsAny(args[1], "\n\r") {
			samples = append(samples, args[1])
		}
		for _, a := range allowed {
			samples = append(samples, a+"X", a[:len(a)-1])
		}
		pcreAgrees(t, allowed, samples)
	}
}

// corpusEntry reads the string arguments of a `go test fuzz v1` corpus file.
func corpusEntry(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] {
		inner, ok := strings.CutPrefix(line, "string(")
		if !ok || !strings.HasSuffix(inner, ")") {
			t.Fatalf("%s: unexpected corpus line %q", file, line)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(inner, ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		args = append(args, s)
	}
	if len(args) != 2 {
		t.Fatalf("%s: %d arguments", file, len(args))
	}
	return args
}
