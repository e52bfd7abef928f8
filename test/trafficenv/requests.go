package trafficenv

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// An Answer is what one request got, in a word a count can key on: "app" (the app answered),
// "503 retry-after=120" (the shed server, or the proxy, answered with a code and its
// Retry-After), "302 https://…" (a redirect), or "error: …" (no answer: a broken connection).
type Answer string

// App is the app's answer.
const App Answer = "app"

// ShedAnswer is the shed server's (or the proxy's) answer with a status code and a Retry-After.
func ShedAnswer(code, retryAfter int) Answer {
	return Answer(fmt.Sprintf("%d retry-after=%d", code, retryAfter))
}

// Request is one request through the proxy: the Host it names, its path, and its headers.
type Request struct {
	Host, Path string
	Header     http.Header
}

// Get is a request for / on host.
func Get(host string) Request { return Request{Host: host, Path: "/"} }

// With is the request with one more header (an empty value is sent as an empty header).
func (r Request) With(name, value string) Request {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h[http.CanonicalHeaderKey(name)] = []string{value}
	r.Header = h
	return r
}

// httpClient sends the requests: never following a redirect, with a timeout so a request loop is
// bounded in time as well as count.
var httpClient = &http.Client{
	Timeout:       5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Do sends r to the proxy at proxy (host:port) and says what it got.
func Do(proxy string, r Request) Answer {
	req, err := http.NewRequest(http.MethodGet, "http://"+proxy+r.Path, nil)
	if err != nil {
		return Answer("error: " + err.Error())
	}
	req.Host = r.Host
	for k, v := range r.Header {
		req.Header[k] = v
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return Answer("error: " + err.Error())
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	switch {
	case res.StatusCode == http.StatusOK && res.Header.Get(AppHeader) == "app":
		return App
	case res.StatusCode >= 300 && res.StatusCode < 400:
		return Answer(fmt.Sprintf("%d %s", res.StatusCode, res.Header.Get("Location")))
	default:
		return Answer(fmt.Sprintf("%d retry-after=%s", res.StatusCode, res.Header.Get("Retry-After")))
	}
}
