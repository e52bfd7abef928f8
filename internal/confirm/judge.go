package confirm

import (
	"fmt"
	"net/http"
	"strconv"

	"floodgate.dev/floodgate/internal/shed"
)

// Answer is what came back to one probe.
type Answer struct {
	// Err is why no answer came ("" when one did).
	Err  string
	Code int
	// Location is the redirect's.
	Location string
	// Shed: the shed server answered (its mark on every answer).
	Shed bool
	// Policy and Generation are what the shed server echoed: the policy it answered for, when it
	// recognised the probe's token, and that policy's generation.
	Policy     string
	Generation int64
}

// AnswerOf reads what came back.
func AnswerOf(res *http.Response) Answer {
	a := Answer{Code: res.StatusCode, Location: res.Header.Get("Location"), Shed: res.Header.Get(shed.ShedHeader) == "true",
		Policy: res.Header.Get(shed.ProbePolicyHeader)}
	a.Generation, _ = strconv.ParseInt(res.Header.Get(shed.ProbeGenerationHeader), 10, 64)
	return a
}

// String says where the probe landed.
func (a Answer) String() string {
	switch {
	case a.Err != "":
		return "no answer: " + a.Err
	case a.Shed && a.Policy != "":
		return fmt.Sprintf("the shed server answered %d for %s at generation %d", a.Code, a.Policy, a.Generation)
	case a.Shed:
		return fmt.Sprintf("the shed server answered %d without recognising the probe (the route's shed answer is not this policy's: another namespace claims it, the shed server has not learnt the route yet, or its probe key differs)", a.Code)
	case a.Location != "" && a.Code >= 300 && a.Code < 400:
		return fmt.Sprintf("a redirect %d to %s", a.Code, a.Location)
	}
	return fmt.Sprintf("an answer %d not from the shed server", a.Code)
}

// Lands reports whether an answer is where the probe should land, for policy (namespace/name)
// at least at generation.
func Lands(p Probe, a Answer, policy string, generation int64) bool {
	if a.Err != "" {
		return false
	}
	shedByPolicy := a.Shed && a.Policy == policy && a.Generation >= generation && a.Code == p.Code
	admitted := !a.Shed && !errorCode(a.Code) && !unrouted(a.Code) && (a.Code != http.StatusTooManyRequests || p.Limited)
	switch p.Expect {
	case ExpectShed:
		return shedByPolicy
	case ExpectRedirect:
		return a.Code >= 300 && a.Code < 400 && a.Location == p.Location
	case ExpectAdmitted:
		return admitted
	case ExpectEither:
		return shedByPolicy || admitted
	}
	return false
}

// unrouted is whether a status code is what a proxy answers for a host or path it does not
// route (404; 421 Misdirected Request): an admitted probe that gets one did not reach the
// application. (An application that answers 404 on the route's own path cannot be told from
// it: its Normal is then not confirmed, and the condition says 404.)
func unrouted(code int) bool {
	return code == http.StatusNotFound || code == http.StatusMisdirectedRequest
}
