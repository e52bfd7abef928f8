// Command floor is the bench's yardstick for the shed server: the least a Go net/http server
// can do per request (a fixed 503 and a two-byte body), measured the same way, so BENCHMARKS.md
// can say how much of a shed answer's cost is Floodgate's and how much is net/http's.
package main

import (
	"flag"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8080", "address to answer on")
	flag.Parse()
	err := http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("x\n"))
	}))
	if err != nil {
		os.Exit(1)
	}
}
