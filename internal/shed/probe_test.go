package shed

import (
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// probeServer is one policy (uid-edge, generation 7) shedding api.example.com, on a server with
// key.
func probeServer(key []byte) *Server {
	p := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: "api-gateway", UID: "uid-edge", Generation: 7},
		Spec: v1alpha1.TrafficPolicySpec{Shed: answer(503, 120)}}
	s := NewServer()
	s.ProbeKey = key
	s.SetTable(table(RouteClaims(p, []Route{{Host: "api.example.com", Path: "/"}}, nil)))
	return s
}

func probe(t *testing.T, url, host, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/", nil)
	req.Host = host
	if token != "" {
		req.Header.Set(ProbeTokenHeader, token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res
}

func TestAProbeWithItsPolicysTokenIsToldThePolicyAndGenerationAndIsNotCountedAsAClient(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s := probeServer(key)
	url := listen(t, s)

	res := probe(t, url, "api.example.com", ProbeToken(key, "uid-edge"))
	if res.StatusCode != 503 || res.Header.Get(ProbePolicyHeader) != "edge/api-gateway" || res.Header.Get(ProbeGenerationHeader) != "7" {
		t.Fatalf("a probe got %d, policy %q, generation %q", res.StatusCode, res.Header.Get(ProbePolicyHeader), res.Header.Get(ProbeGenerationHeader))
	}
	answered := CountKey{Policy: "edge/api-gateway", Host: "api.example.com", Code: 503}
	if n, probes := s.Counts.Snapshot()[answered], s.Probes.Snapshot()[answered]; n != 0 || probes != 1 {
		t.Fatalf("a probe was counted as %d client answers and %d probe answers; want 0 and 1", n, probes)
	}
}

func TestAForgedProbeTokenIsAClient(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s := probeServer(key)
	url := listen(t, s)
	forged := []string{
		"yes",
		ProbeToken([]byte("another key entirely, 32 bytes.."), "uid-edge"), // right form, wrong key
		ProbeToken(key, "uid-other"),                                       // another policy's token
		strings.ToUpper(ProbeToken(key, "uid-edge")),                       // not the same bytes
	}
	for _, token := range forged {
		res := probe(t, url, "api.example.com", token)
		if res.StatusCode != 503 || res.Header.Get(ProbePolicyHeader) != "" || res.Header.Get(ProbeGenerationHeader) != "" {
			t.Fatalf("token %q: got %d with policy %q generation %q; a forged token must get a client's answer", token,
				res.StatusCode, res.Header.Get(ProbePolicyHeader), res.Header.Get(ProbeGenerationHeader))
		}
	}
	if n := s.Counts.Snapshot()[CountKey{Policy: "edge/api-gateway", Host: "api.example.com", Code: 503}]; n != uint64(len(forged)) {
		t.Fatalf("%d client answers counted, want %d", n, len(forged))
	}
}

func TestWithoutAKeyNoRequestIsAProbe(t *testing.T) {
	s := probeServer(nil)
	url := listen(t, s)
	if res := probe(t, url, "api.example.com", ProbeToken(nil, "uid-edge")); res.Header.Get(ProbePolicyHeader) != "" {
		t.Fatal("a server without a key echoed a probe")
	}
	if res := probe(t, url, "api.example.com", ProbeToken([]byte("0123456789abcdef"), "uid-edge")); res.Header.Get(ProbePolicyHeader) != "" {
		t.Fatal("a server without a key echoed a probe made with some key")
	}
}

func TestAProbeOfARouteClaimedFromTwoNamespacesGetsTheNeutralAnswerAndNoEcho(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: "a", UID: "uid-a", Generation: 1}}
	b := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "b", UID: "uid-b", Generation: 1}}
	s := NewServer()
	s.ProbeKey = key
	route := []Route{{Host: "api.example.com", Path: "/"}}
	s.SetTable(table(RouteClaims(a, route, nil), RouteClaims(b, route, nil)))
	url := listen(t, s)
	for _, uid := range []string{"uid-a", "uid-b"} {
		if res := probe(t, url, "api.example.com", ProbeToken(key, types.UID(uid))); res.Header.Get(ProbePolicyHeader) != "" {
			t.Fatalf("%s: a conflicted route echoed %q: its answer is nobody's", uid, res.Header.Get(ProbePolicyHeader))
		}
	}
}
