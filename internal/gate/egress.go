package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrEgressRefused is returned for a gate address the egress guard refuses.
var ErrEgressRefused = errors.New("refused by the gate egress policy")

// MaxResponseBytes caps what a gate reads of an answer.
const MaxResponseBytes = 1 << 20

// EgressGuard decides which addresses gates may reach. Anyone who can create a policy (the
// built-in edit role) chooses a gate's URL, so without it a gate could reach the node's
// loopback, the cloud metadata service (link-local) or the API server with the manager's
// network identity, and its status would tell a reader with view what answered. In-cluster
// Services stay reachable: that is where Prometheus lives.
type EgressGuard struct {
	// Denied are addresses refused besides loopback, link-local and unspecified ones: the API
	// server's own.
	Denied []netip.Addr
}

// metadataServices are the cloud metadata and host services that live off the link-local range:
// AWS's IPv6 instance metadata, Alibaba Cloud's metadata, Azure's WireServer.
var metadataServices = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("168.63.129.16"),
}

// Forms of an IPv6 address that carry an IPv4 one a gateway or the host unwraps: NAT64's
// well-known prefix (the IPv4 address in the last 32 bits) and 6to4 (in bits 16 to 48).
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// Allows reports whether a gate may connect to ip, in any of its forms (IPv4-mapped, NAT64,
// 6to4 wrap an IPv4 address the guard judges as itself).
func (g *EgressGuard) Allows(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, form := range forms(ip) {
		if !g.allows(form) {
			return false
		}
	}
	return true
}

func (g *EgressGuard) allows(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	// 0.0.0.0/8 is "this network": Linux connects to it as to loopback.
	if ip.Is4() && ip.As4()[0] == 0 {
		return false
	}
	for _, denied := range [][]netip.Addr{g.Denied, metadataServices} {
		for _, d := range denied {
			if d.Unmap() == ip {
				return false
			}
		}
	}
	return true
}

// forms are ip itself and the IPv4 address it wraps, if any.
func forms(ip netip.Addr) []netip.Addr {
	ip = ip.Unmap()
	out := []netip.Addr{ip}
	if !ip.Is6() {
		return out
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		out = append(out, netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	case sixToFour.Contains(ip):
		out = append(out, netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	}
	return out
}

// control checks the address a connection is about to be made to, after name resolution: a
// name that resolves to a refused address (DNS rebinding included) is refused at dial time.
func (g *EgressGuard) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return ErrEgressRefused
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !g.Allows(ip) {
		return ErrEgressRefused
	}
	return nil
}

// Dial connects as gates do: with a guard, every connection is checked at dial time (nil: no
// check). Probes through a data plane (internal/confirm) dial through it too: their address is
// a policy author's to choose, as a gate's URL is.
func Dial(guard *EgressGuard, timeout time.Duration) func(ctx context.Context, network, address string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if guard != nil {
		dialer.Control = guard.control
	}
	return dialer.DialContext
}

// APIServerAddresses are the addresses of the API server a rest host names (resolved now), to
// deny them to gates.
func APIServerAddresses(ctx context.Context, host string) []netip.Addr {
	if u, err := url.Parse(host); err == nil && u.Host != "" {
		host = u.Hostname()
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	return ips
}

// NewHTTPClient is the client gates call webhooks and Prometheus with: redirects are not
// followed (a 3xx is an answer, not a pass), answers are read up to MaxResponseBytes, and with a
// guard every connection is checked at dial time. guard nil: no check (tests whose gates listen
// on loopback).
func NewHTTPClient(guard *EgressGuard) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if guard != nil {
		dialer.Control = guard.control
	}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would be the one dialled: gates go direct
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: MaxTimeout,
	}
	return &http.Client{
		Transport:     cappedBodies{next: transport, guarded: guard != nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// cappedBodies makes a response body fail past MaxResponseBytes instead of reading on, and,
// guarded, tells nothing of why a connection failed beyond that it was refused by the guard or
// could not be made: whether a port is closed or filtered is not for every reader of the
// policy's status to learn.
type cappedBodies struct {
	next    http.RoundTripper
	guarded bool
}

func (c cappedBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := c.next.RoundTrip(req)
	if err != nil {
		var op *net.OpError
		switch {
		case errors.Is(err, ErrEgressRefused):
			return nil, ErrEgressRefused
		case c.guarded && errors.As(err, &op) && op.Op == "dial":
			return nil, errCouldNotConnect
		}
		return nil, err
	}
	res.Body = &cappedBody{ReadCloser: res.Body, left: MaxResponseBytes}
	return res, nil
}

var errCouldNotConnect = errors.New("could not connect")

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("the answer is larger than %d bytes", MaxResponseBytes)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
