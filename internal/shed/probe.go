package shed

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// Probes: the manager confirms a lever by sending requests through the data plane (internal/
// confirm). Each carries its policy's token in ProbeTokenHeader. The shed server recognises the
// token of the policy whose route it answers for and echoes that policy and the generation it
// answered at; a request without it, or with a token that is not that policy's, is a client's
// (counted as one, and told nothing more than a client is).
const (
	// ProbeTokenHeader carries a probe's token.
	ProbeTokenHeader = "X-Floodgate-Probe"
	// ProbePolicyHeader echoes, on an answer to a probe, the policy the shed server answered for
	// (namespace/name).
	ProbePolicyHeader = "X-Floodgate-Probe-Policy"
	// ProbeGenerationHeader echoes the policy's generation the answer was made from.
	ProbeGenerationHeader = "X-Floodgate-Probe-Generation"
	// ShedHeader marks every answer of the shed server.
	ShedHeader = "X-Floodgate-Shed"
)

// MinProbeKeyBytes is the shortest probe key accepted.
const MinProbeKeyBytes = 16

// ProbeToken is a policy's probe token: HMAC-SHA256 of its UID under the key the manager and the
// shed server share. Nobody without the key can make one, and a token says nothing of the key
// or of another policy's.
func ProbeToken(key []byte, uid types.UID) string {
	if len(key) == 0 || uid == "" {
		return ""
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("floodgate-probe\x00"))
	mac.Write([]byte(uid))
	return hex.EncodeToString(mac.Sum(nil))
}

// ReadProbeKey reads the probe key from a file (a mounted Secret), without surrounding white
// space. An empty path is no key: probes are then not recognised, and the manager sends none.
func ReadProbeKey(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the probe key: %w", err)
	}
	key := []byte(strings.TrimSpace(string(b)))
	if len(key) < MinProbeKeyBytes {
		return nil, fmt.Errorf("the probe key in %s has %d bytes; it needs at least %d", path, len(key), MinProbeKeyBytes)
	}
	return key, nil
}
