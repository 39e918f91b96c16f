package sender

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSend delivers a signed 1 KiB payload to a local sink from 64
// goroutines and reports deliveries per second.
func BenchmarkSend(b *testing.B) {
	const workers = 64
	srv := server(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	s := newSender(b, Options{Concurrency: workers, AllowCIDRs: loopback, Now: time.Now})
	sub := subFor(srv.URL + "/hook")
	sub.SigningKeys = [][]byte{bytes.Repeat([]byte{1}, 32)}
	sub.Headers = map[string]string{"Authorization": "Bearer benchmark-token"}
	body := bytes.Repeat([]byte("a"), 1024)

	var next atomic.Int64
	var failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				res := s.Send(context.Background(), sub, Request{ID: fmt.Sprint(i), Body: body})
				if !res.OK() {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d deliveries failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}
