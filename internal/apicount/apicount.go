// Package apicount is a proxy in front of an API server that counts what passes through it, by
// verb and resource: how the benchmarks count a pass's requests, and how a test proves a command
// sent a cluster no mutating request.
package apicount

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// Counter counts the requests a proxy passed, by verb and resource as the API server names them
// ("get ingresses", "patch trafficpolicies/status", "list endpointslices").
type Counter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *Counter) add(key string) {
	c.mu.Lock()
	c.counts[key]++
	c.mu.Unlock()
}

// Snapshot is the counts so far.
func (c *Counter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Since is the counts added since an earlier snapshot.
func (c *Counter) Since(before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range c.Snapshot() {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// Proxy serves the API server on a loopback port without authentication, counting each
// request by verb and resource as the API server itself names them, and writes a kubeconfig that
// reaches it.
func Proxy(cfg *rest.Config, dir string) (*Counter, string, error) { return ProxyWith(cfg, dir, nil) }

// ProxyWith is Proxy that calls before (when set) with each request, before passing it on: how a
// test makes something happen between a client's read and its write.
func ProxyWith(cfg *rest.Config, dir string, before func(*http.Request)) (*Counter, string, error) {
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, "", err
	}
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, "", err
	}
	c := &Counter{counts: map[string]int{}}
	infos := &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:     transport,
		FlushInterval: -1, // watches stream
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if info, err := infos.NewRequestInfo(r); err == nil && info.IsResourceRequest {
				resource := info.Resource
				if info.Subresource != "" {
					resource += "/" + info.Subresource
				}
				if dryRun(r) {
					// A server-side dry run persists nothing: counted apart, never as a mutation.
					c.add("dry-run " + info.Verb + " " + resource)
				} else {
					c.add(info.Verb + " " + resource)
				}
			} else {
				c.add(strings.ToLower(r.Method) + " " + r.URL.Path)
			}
			if before != nil {
				before(r)
			}
			proxy.ServeHTTP(w, r)
		}))
	}()
	kubeconfig := filepath.Join(dir, "proxied-kubeconfig")
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: "http://%s"}}]
users: [{name: bench, user: {}}]
contexts: [{name: bench, context: {cluster: bench, user: bench}}]
current-context: bench
`, l.Addr())
	return c, kubeconfig, os.WriteFile(kubeconfig, []byte(data), 0o600)
}

// dryRun says whether r asks for a server-side dry run: in its query, or, for a delete, in the
// DeleteOptions of its body (where client-go sends it, as protobuf for built-in kinds).
func dryRun(r *http.Request) bool {
	if r.URL.Query().Get("dryRun") != "" {
		return true
	}
	if r.Method != http.MethodDelete || r.Body == nil {
		return false
	}
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil || len(body) == 0 {
		return false
	}
	if bytes.HasPrefix(body, []byte("k8s\x00")) { // protobuf, as client-go sends built-in kinds
		obj, _, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		opts, ok := obj.(*metav1.DeleteOptions)
		return err == nil && ok && len(opts.DryRun) > 0
	}
	var opts metav1.DeleteOptions
	return json.Unmarshal(body, &opts) == nil && len(opts.DryRun) > 0
}

// Mutating is the counted requests that change something (create, update, patch, delete,
// deletecollection), in the counts given.
func Mutating(counts map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range counts {
		verb, _, _ := strings.Cut(k, " ")
		switch verb {
		case "create", "update", "patch", "delete", "deletecollection", "post", "put":
			out[k] = v
		}
	}
	return out
}
