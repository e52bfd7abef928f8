package shed

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"k8s.io/apimachinery/pkg/types"
)

// Response is how one policy answers shed requests.
type Response struct {
	Policy     string
	StatusCode int
	RetryAfter int // seconds; 0 sends no Retry-After
	Redirect   string
	// UID and Generation are the policy's (none on DefaultResponse): a probe carrying the
	// policy's token is told the generation its answer was made from.
	UID        types.UID
	Generation int64
	// probeToken is the policy's probe token under the server's key (Server.SetTable sets it).
	probeToken []byte
	jsonBody   []byte
	htmlBody   []byte
}

// DefaultResponse is the neutral answer: for requests no policy claims (a route the shed server
// has not learnt yet) and for routes claimed by policies of more than one namespace: 503 with
// Retry-After.
var DefaultResponse = newResponse("", http.StatusServiceUnavailable, 120, "")

func newResponse(policy string, code, retryAfter int, redirect string) *Response {
	r := &Response{Policy: policy, StatusCode: code, RetryAfter: retryAfter, Redirect: redirect}
	if redirect != "" {
		r.StatusCode = http.StatusFound
	}
	msg := "This service is temporarily shedding traffic to recover. Please retry later."
	body := map[string]any{"error": "traffic_shed", "message": msg}
	if policy != "" {
		body["policy"] = policy
	}
	if retryAfter > 0 {
		body["retryAfterSeconds"] = retryAfter
	}
	r.jsonBody, _ = json.Marshal(body)
	r.jsonBody = append(r.jsonBody, '\n')
	r.htmlBody = []byte(fmt.Sprintf("<!doctype html><html><head><title>Temporarily unavailable</title></head><body><h1>Temporarily unavailable</h1><p>%s</p><p><small>%s</small></p></body></html>\n",
		html.EscapeString(msg), html.EscapeString(policy)))
	return r
}

// JSONBody is the answer's body as the shed server sends it to a client that does not ask for
// HTML (a proxy answering the shed itself sends the same).
func (r *Response) JSONBody() []byte { return bytes.Clone(r.jsonBody) }

// route is one host and path a canary sends here.
type route struct {
	host     string
	path     string
	exact    bool
	response *Response
	// count counts the route's answers to clients, probes its answers to probes (Server.SetTable
	// sets both).
	count, probes *atomic.Uint64
}

// Table maps a request's host and path to the response of the policy that shed it. Lookups are
// indexed by host: an exact host, then the wildcard one label up, then the catch-alls; within
// each, the most specific path first.
type Table struct {
	exact    map[string][]route // by host
	wildcard map[string][]route // by the suffix a wildcard covers (".example.com")
	catchAll []route
	size     int
}

// Lookup finds the response for a host (any case, with a port or a trailing dot) and path.
func (t *Table) Lookup(host, path string) *Response {
	if r := t.lookup(host, path); r != nil {
		return r.response
	}
	return DefaultResponse
}

// lookup is the route that answers a host and path (nil: none, DefaultResponse answers).
func (t *Table) lookup(host, path string) *route {
	host = NormalizeHost(host)
	if r := matchPath(t.exact[host], path); r != nil {
		return r
	}
	if i := strings.IndexByte(host, '.'); i >= 0 {
		if r := matchPath(t.wildcard[host[i:]], path); r != nil {
			return r
		}
	}
	return matchPath(t.catchAll, path)
}

// matchPath is the first route (most specific first) matching path.
func matchPath(routes []route, path string) *route {
	for i := range routes {
		if r := &routes[i]; r.exact && path == r.path || !r.exact && prefixMatches(r.path, path) {
			return r
		}
	}
	return nil
}

// routes calls f with every route of the table, to be changed in place.
func (t *Table) routes(f func(*route)) {
	for i := range t.catchAll {
		f(&t.catchAll[i])
	}
	for _, m := range []map[string][]route{t.exact, t.wildcard} {
		for _, bucket := range m {
			for i := range bucket {
				f(&bucket[i])
			}
		}
	}
}

// prefixMatches follows the Ingress Prefix rule: element-wise on '/'.
func prefixMatches(prefix, path string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// Server answers every request with the shed response of the policy that routed it here, and
// counts its answers.
type Server struct {
	table atomic.Pointer[Table]
	// Counts are its answers to clients so far; Probes its answers to the manager's probes.
	Counts, Probes *Counts
	// unclaimed counts the answers no route gave (DefaultResponse).
	unclaimed *atomic.Uint64
	// ProbeKey is the key policies' probe tokens are made with (shed.ProbeToken), set before
	// the first SetTable; nil: no request is recognised as a probe.
	ProbeKey []byte
}

// NewServer starts with an empty table (every request gets DefaultResponse).
func NewServer() *Server {
	s := &Server{Counts: &Counts{}, Probes: &Counts{desc: probesDesc}}
	s.unclaimed = s.Counts.counter(CountKey{Code: DefaultResponse.StatusCode})
	s.table.Store(&Table{})
	return s
}

// SetTable swaps the table in one step, each of its routes with its counter (a table is set on
// one server).
func (s *Server) SetTable(t *Table) {
	t.routes(func(r *route) {
		key := CountKey{Policy: r.response.Policy, Host: r.host, Code: r.response.StatusCode}
		r.count, r.probes = s.Counts.counter(key), s.Probes.counter(key)
		if r.response.UID != "" && r.response.probeToken == nil {
			r.response.probeToken = []byte(ProbeToken(s.ProbeKey, r.response.UID))
		}
	})
	s.table.Store(t)
}

// ServeFast answers one shed request (fasthttp: the server that faces the herd answers well over
// twice what net/http does per core, BENCHMARKS.md g): the answer of the most specific route
// claiming the request's host and path, or the neutral default. Nothing of the request but its
// host, path, method and Accept header is read; nothing of it is echoed.
func (s *Server) ServeFast(ctx *fasthttp.RequestCtx) {
	resp := DefaultResponse
	probe := false
	if r := s.table.Load().lookup(string(ctx.Host()), string(ctx.Path())); r == nil {
		s.unclaimed.Add(1)
	} else {
		resp = r.response
		probe = isProbe(ctx.Request.Header.Peek(ProbeTokenHeader), resp.probeToken)
		switch {
		case probe && r.probes != nil:
			r.probes.Add(1)
		case !probe && r.count != nil:
			r.count.Add(1)
		}
	}
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-store")
	h.Set(ShedHeader, "true")
	if probe {
		h.Set(ProbePolicyHeader, resp.Policy)
		h.Set(ProbeGenerationHeader, strconv.FormatInt(resp.Generation, 10))
	}
	if resp.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(resp.RetryAfter))
	}
	ctx.SetStatusCode(resp.StatusCode)
	if resp.Redirect != "" {
		h.Set("Location", resp.Redirect)
		return
	}
	body := resp.jsonBody
	if bytes.Contains(ctx.Request.Header.Peek("Accept"), []byte("text/html")) {
		h.SetContentType("text/html; charset=utf-8")
		body = resp.htmlBody
	} else {
		h.SetContentType("application/json")
	}
	if !ctx.IsHead() {
		ctx.SetBody(body)
	}
}

// isProbe reports whether a request's token is the token of the policy answering it (compared
// in constant time: the time taken says nothing of how much of a forged token was right).
func isProbe(token, want []byte) bool {
	return len(want) > 0 && len(token) == len(want) && subtle.ConstantTimeCompare(token, want) == 1
}

// ServeAnswers answers shed requests on addr until ctx ends, then stops within 5 seconds.
func ServeAnswers(ctx context.Context, addr string, s *Server) error {
	srv := &fasthttp.Server{
		Handler:            s.ServeFast,
		Name:               "floodgate-shed",
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		IdleTimeout:        30 * time.Second,
		ReadBufferSize:     16 << 10, // the largest request head read
		MaxRequestBodySize: 64 << 10, // a shed request's body is never read
		NoDefaultDate:      true,
	}
	return serveUntil(ctx, func() error { return srv.ListenAndServe(addr) }, srv.ShutdownWithContext)
}

// HTTPServer wraps a handler (the shed server's health endpoint) with limits.
func HTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

// Serve runs srv until ctx ends.
func Serve(ctx context.Context, srv *http.Server) error {
	return serveUntil(ctx, srv.ListenAndServe, srv.Shutdown)
}

// serveUntil runs serve until it fails or ctx ends; then shutdown has 5 seconds.
func serveUntil(ctx context.Context, serve func() error, shutdown func(context.Context) error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case <-ctx.Done():
		stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return shutdown(stop)
	case err := <-errc:
		return err
	}
}
