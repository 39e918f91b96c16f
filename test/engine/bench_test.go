package engine

// Benchmarks of the whole delivery engine: Publish → JetStream queue →
// dispatcher → sender → a local HTTP sink. Each benchmark runs its
// measurement once per invocation (a repeated b.N round reports the figures
// of the first) and prints its figures as "name: value" lines, measured and
// not asserted. The throughput figures are CPU-bound on a small machine: run
// them on a quiet one, and compare the CPU time per delivery
// (delivery_cpu_us_per_event, bare_http_cpu_us_per_post and their ratio
// delivery_cpu_ratio, Linux only), which other load on the machine disturbs
// less than the rates.
//
// Environment overrides, for quicker runs:
//
//	KUBEHOOK_BENCH_DELIVERIES      deliveries of BenchmarkDeliveryThroughput (20480)
//	KUBEHOOK_BENCH_CONCURRENCY     its deliveries in flight and bare POST goroutines (64)
//	KUBEHOOK_BENCH_LATENCY_FOR     publishing time of the BenchmarkDeliveryLatency benchmarks (10s)
//	KUBEHOOK_BENCH_STATUS_FOR      window of BenchmarkStatusWritesAt1000EPS (30s)

import (
	"bytes"
	"context"
	"fmt"
	"github.com/kubehook/kubehook/internal/intake"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/outcomes"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

const (
	// benchBodySize is the size of a delivered request body.
	benchBodySize = 1024
	// benchWorkers is the delivery concurrency of the throughput benchmark,
	// and the number of goroutines of its bare HTTP loop.
	benchWorkers = 64
	// benchProductionConcurrency is kubehook's --delivery-concurrency default.
	benchProductionConcurrency = 256
)

// benchContents is TAG_PUSH contents with a sequence number, to match a
// delivery to its publication, and padding up to benchBodySize.
type benchContents struct {
	payload.TagPush
	Seq     int    `json:"seq"`
	Padding string `json:"padding"`
}

// benchPayload builds events whose rendered DTR body is about benchBodySize bytes.
type benchPayload struct{ pad string }

func newBenchPayload(b *testing.B) benchPayload {
	p := benchPayload{}
	body := p.body(b, "bench/repo-00", 0)
	p.pad = string(bytes.Repeat([]byte("x"), max(0, benchBodySize-len(body))))
	return p
}

func (p benchPayload) event(b *testing.B, repo string, seq int) intake.Event {
	ns, name := subscriptions.SplitRepository(repo)
	ev, err := payload.NewEvent(kubehookv1.TagPush, time.Now(), benchContents{
		TagPush: payload.TagPush{
			Namespace: ns, Repository: name, Tag: "v1",
			Digest:    "sha256:0afb3b5a5a7a1c1d8b0c0f3e2d1c0b9a8f7e6d5c4b3a29181716151413121110",
			ImageName: "registry.example.com/" + repo + ":v1", OS: "linux", Architecture: "amd64",
			Author: "bench", PushedAt: time.Now().UTC(),
		},
		Seq:     seq,
		Padding: p.pad,
	})
	if err != nil {
		b.Fatal(err)
	}
	return intake.Event{Repository: repo, Payload: ev}
}

// body is the request body the sink receives for the event.
func (p benchPayload) body(b *testing.B, repo string, seq int) []byte {
	body, _, err := payload.Render(kubehookv1.PayloadFormatDTR, p.event(b, repo, seq).Payload, "msg_bench", "kubehook")
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// seqOf finds the sequence number in a delivered body.
func seqOf(body []byte) (int, bool) {
	const field = `"seq":`
	i := bytes.Index(body, []byte(field))
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(field):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(string(rest[:j]))
	return n, err == nil
}

// benchSink answers 200 to every request after draining its body, counts
// them, and signals when a target count is reached. record, when set,
// receives every body and the time it was read.
type benchSink struct {
	*httptest.Server
	n       atomic.Int64
	target  atomic.Int64
	mu      sync.Mutex
	reached chan struct{}
	record  func(body []byte, at time.Time)
	// last and maxGap track the longest time without an arrival, in
	// nanoseconds since base, to show stalls.
	base   time.Time
	last   atomic.Int64
	maxGap atomic.Int64
}

func newBenchSink(record func([]byte, time.Time)) *benchSink {
	s := &benchSink{record: record, base: time.Now()}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.record != nil {
			body, _ := io.ReadAll(r.Body)
			s.record(body, time.Now())
		} else {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		w.WriteHeader(http.StatusOK)
		now := int64(time.Since(s.base))
		if gap := now - s.last.Swap(now); gap > s.maxGap.Load() {
			s.maxGap.Store(gap) // racy maximum: good enough to show a stall
		}
		if c := s.n.Add(1); c == s.target.Load() {
			s.mu.Lock()
			close(s.reached)
			s.mu.Unlock()
		}
	}))
	return s
}

// expect returns a channel closed once n more requests have arrived, and
// restarts the gap measurement.
func (s *benchSink) expect(n int64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last.Store(int64(time.Since(s.base)))
	s.maxGap.Store(0)
	s.reached = make(chan struct{})
	s.target.Store(s.n.Load() + n)
	return s.reached
}

// benchOutcomes counts the dispatcher's outcomes and keeps the first failures.
type benchOutcomes struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []dispatcher.Outcome
}

func (o *benchOutcomes) Report(out dispatcher.Outcome) {
	if out.OK {
		o.ok.Add(1)
		return
	}
	o.failed.Add(1)
	o.mu.Lock()
	if len(o.failures) < 5 {
		o.failures = append(o.failures, out)
	}
	o.mu.Unlock()
}

// String summarizes the outcomes for an error message.
func (o *benchOutcomes) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := fmt.Sprintf("%d attempts succeeded, %d failed", o.ok.Load(), o.failed.Load())
	for _, f := range o.failures {
		s += fmt.Sprintf("\n  failed: %s attempt %d: HTTP %d %s", f.DeliveryID, f.Attempts, f.StatusCode, f.Message)
	}
	return s
}

// queueState describes the queue for an error message.
func (p *benchPipeline) queueState() string {
	ctx := context.Background()
	pending, err := p.q.Pending(ctx)
	dead, err2 := p.q.DeadLetters(ctx)
	parked, err3 := p.q.ParkedSubscriptions(ctx)
	return fmt.Sprintf("queue: %d pending (%v), %d dead letters (%v), parked deliveries of %v (%v)", pending, err, dead, err2, parked, err3)
}

// benchPipeline is the engine as kubehook runs it, on a fresh queue.
type benchPipeline struct {
	reg    *subscriptions.Registry
	q      *queue.Queue
	pub    *intake.Publisher
	snd    *sender.Sender
	cancel context.CancelFunc
	done   chan error
}

// benchLogger gives the engine a logger as kubehook's main does (zap,
// production settings), writing nowhere.
var benchLogger sync.Once

// startBenchPipeline runs the engine with the dispatcher options opts (its
// Concurrency also sizes the sender's connection pools).
func startBenchPipeline(b *testing.B, rep dispatcher.Reporter, opts dispatcher.Options) *benchPipeline {
	b.Helper()
	benchLogger.Do(func() { ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard))) })
	q, err := queue.Open(context.Background(), queue.Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	reg := subscriptions.New()
	snd := sender.New(sender.Options{Concurrency: opts.Concurrency, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	opts.GracePeriod = 5 * time.Second
	d := dispatcher.New(q, reg, snd, rep, opts)
	ctx, cancel := context.WithCancel(context.Background())
	p := &benchPipeline{reg: reg, q: q, pub: &intake.Publisher{Registry: reg, Queue: q}, snd: snd, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- d.Start(ctx) }()
	return p
}

// subscribe registers a signed TAG_PUSH subscription on key.
func (p *benchPipeline) subscribe(name, key, endpoint string) {
	spec := kubehookv1.WebhookSubscriptionSpec{Type: kubehookv1.TagPush, Key: key, Endpoint: endpoint}
	p.reg.Upsert(&subscriptions.Subscription{
		ID:  types.NamespacedName{Namespace: "bench", Name: name},
		UID: types.UID("uid-" + name), Type: kubehookv1.TagPush, Key: key, Endpoint: endpoint,
		PayloadFormat: kubehookv1.PayloadFormatDTR, Delivery: subscriptions.DeliveryFor(&spec),
		SigningKeys: [][]byte{bytes.Repeat([]byte{7}, 32)},
	})
}

// stop shuts the dispatcher down, then the queue.
func (p *benchPipeline) stop(b *testing.B) {
	p.cancel()
	if err := <-p.done; err != nil {
		b.Error(err)
	}
	p.snd.CloseIdleConnections()
	p.q.Close()
}

// checkGoroutines reports goroutines left running after a benchmark shut
// everything down.
func checkGoroutines(b *testing.B, before int) {
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		b.Errorf("%d goroutines left running after shutdown (%d before):\n%s", n-before, before, buf[:runtime.Stack(buf, true)])
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q is not a positive integer", name, v)
	}
	return n
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q is not a positive duration", name, v)
	}
	return d
}

// once runs measure on the first round of a benchmark invocation (b.N is 1
// then) and reports its metrics; later rounds report them again without
// measuring, so a long run is never redone to fill a larger b.N.
func once(b *testing.B, last *map[string]float64, measure func() map[string]float64) {
	if b.N == 1 || *last == nil {
		*last = measure()
	}
	for unit, v := range *last {
		b.ReportMetric(v, unit)
	}
}

var throughputResult, latencyResult, latency5000Result, statusResult map[string]float64

// BenchmarkDeliveryThroughput measures end-to-end deliveries per second,
// from Publish in batches to arrival at a local sink, with 64 subscriptions
// and 64 deliveries in flight, against a bare net/http POST loop to the same
// sink at the same concurrency, and prints their ratio.
func BenchmarkDeliveryThroughput(b *testing.B) {
	once(b, &throughputResult, func() map[string]float64 { return measureThroughput(b) })
}

func measureThroughput(b *testing.B) map[string]float64 {
	const (
		subscriptions = 64
		batchEvents   = 64 // events per Publish call, one per subscription
		publishers    = 4  // Publish calls running at once
		warmupBatches = 4
	)
	total := envInt(b, "KUBEHOOK_BENCH_DELIVERIES", 20480)
	workers := envInt(b, "KUBEHOOK_BENCH_CONCURRENCY", benchWorkers)
	batches := (total + batchEvents - 1) / batchEvents
	total = batches * batchEvents

	goroutines := runtime.NumGoroutine()
	sink := newBenchSink(nil)
	defer func() { sink.Close(); checkGoroutines(b, goroutines) }()
	pl := newBenchPayload(b)

	var pipelineRate, publishRate, pipelineCPU, pipelineAllocs, parked float64
	var maxGap time.Duration
	var outs benchOutcomes
	pprof.Do(context.Background(), pprof.Labels("phase", "pipeline"), func(context.Context) {
		// The sink is one endpoint host: its limit of attempts in flight
		// (--max-in-flight-per-host, 32 by default) is the concurrency, so
		// that as many are in flight as in the bare loop.
		p := startBenchPipeline(b, &outs, dispatcher.Options{Concurrency: workers, PerHost: workers})
		defer p.stop(b)
		repos := make([]string, subscriptions)
		for i := range repos {
			repos[i] = fmt.Sprintf("bench/repo-%02d", i)
			p.subscribe(fmt.Sprintf("sub-%02d", i), repos[i], sink.URL)
		}
		mkBatch := func(n int) [][]intake.Event {
			out := make([][]intake.Event, n)
			for i := range out {
				out[i] = make([]intake.Event, batchEvents)
				for j := range out[i] {
					out[i][j] = pl.event(b, repos[j%subscriptions], i*batchEvents+j)
				}
			}
			return out
		}
		publishAll := func(all [][]intake.Event) {
			var next atomic.Int64
			var wg sync.WaitGroup
			for range publishers {
				wg.Go(func() {
					for {
						i := int(next.Add(1)) - 1
						if i >= len(all) {
							return
						}
						if n, err := p.pub.Publish(context.Background(), all[i]...); err != nil || n != batchEvents {
							b.Errorf("Publish = %d, %v; want %d deliveries", n, err, batchEvents)
							return
						}
					}
				})
			}
			wg.Wait()
		}
		await := func(ch <-chan struct{}, what string) bool {
			select {
			case <-ch:
				return true
			case <-time.After(2 * time.Minute):
				b.Errorf("%s: %d deliveries arrived; %s; %s", what, sink.n.Load(), &outs, p.queueState())
				return false
			}
		}

		// Warm up: connections to the sink, the consumer, the subscription states.
		warm := mkBatch(warmupBatches)
		arrived := sink.expect(int64(warmupBatches * batchEvents))
		publishAll(warm)
		if !await(arrived, "warm-up") {
			return
		}

		all := mkBatch(batches)
		runtime.GC()
		arrived = sink.expect(int64(total))
		cpu := startCPU()
		parkedBefore := testutil.ToFloat64(metrics.ParkedTotal)
		start := time.Now()
		publishAll(all)
		published := time.Since(start)
		if !await(arrived, "measured run") {
			return
		}
		elapsed := time.Since(start)
		pipelineCPU = cpu.perOp(total)
		pipelineAllocs = cpu.allocsPerOp(total)
		parked = testutil.ToFloat64(metrics.ParkedTotal) - parkedBefore
		maxGap = time.Duration(sink.maxGap.Load())
		pipelineRate = float64(total) / elapsed.Seconds()
		publishRate = float64(total) / published.Seconds()
	})
	if b.Failed() {
		return nil
	}
	if n := outs.failed.Load(); n > 0 {
		b.Errorf("%d delivery attempts failed", n)
	}

	// The same sink, the same body, the same concurrency, with plain net/http.
	var bareRate, bareCPU, bareAllocs float64
	pprof.Do(context.Background(), pprof.Labels("phase", "bare"), func(context.Context) {
		body := pl.body(b, "bench/repo-00", 12345)
		bareRate, bareCPU, bareAllocs = barePosts(b, sink.URL, body, workers, warmupBatches*batchEvents, total)
	})

	ratio := pipelineRate / bareRate
	fmt.Printf("delivery_events_per_second: %.0f\n", pipelineRate)
	fmt.Printf("bare_http_posts_per_second: %.0f\n", bareRate)
	fmt.Printf("delivery_publish_events_per_second: %.0f\n", publishRate)
	fmt.Printf("delivery_longest_gap_ms: %.1f\n", float64(maxGap.Microseconds())/1000)
	// Healthy endpoints in a burst are parked too; each parked delivery is
	// stored twice.
	fmt.Printf("delivery_parked_share: %.2f\n", parked/float64(total))
	if pipelineCPU >= 0 && bareCPU >= 0 {
		// Process CPU time, the sink's share included, per request it received.
		fmt.Printf("delivery_cpu_us_per_event: %.0f\n", pipelineCPU)
		fmt.Printf("bare_http_cpu_us_per_post: %.0f\n", bareCPU)
	}
	// Heap allocations, the sink's included, per request it received.
	fmt.Printf("delivery_allocs_per_event: %.0f\n", pipelineAllocs)
	fmt.Printf("bare_http_allocs_per_post: %.0f\n", bareAllocs)
	if pipelineCPU > 0 && bareCPU >= 0 {
		// CPU time per bare POST over CPU time per delivery: what the
		// throughput ratio would be on a machine with nothing else to run.
		fmt.Printf("delivery_cpu_ratio: %.2f\n", bareCPU/pipelineCPU)
	}
	fmt.Printf("delivery_throughput_ratio: %.2f\n", ratio)
	return map[string]float64{"deliveries/s": pipelineRate, "bare-posts/s": bareRate, "publishes/s": publishRate, "ratio": ratio,
		"cpu-us/delivery": pipelineCPU, "cpu-us/bare-post": bareCPU}
}

// barePosts POSTs body to url from workers goroutines over keep-alive
// connections, warmup times untimed and then total times, and returns the
// timed requests per second, the process CPU time and the heap allocations
// per request (sink included).
func barePosts(b *testing.B, url string, body []byte, workers, warmup, total int) (rate, cpuPerPost, allocsPerPost float64) {
	tr := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers, IdleConnTimeout: 90 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	run := func(n int) time.Duration {
		var next atomic.Int64
		var failed atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					resp, err := client.Post(url, "application/json", bytes.NewReader(body))
					if err != nil {
						failed.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		if f := failed.Load(); f > 0 {
			b.Errorf("%d of %d bare POSTs failed", f, n)
		}
		return elapsed
	}
	run(warmup)
	runtime.GC()
	cpu := startCPU()
	elapsed := run(total)
	return float64(total) / elapsed.Seconds(), cpu.perOp(total), cpu.allocsPerOp(total)
}

// processCPU is the CPU time (user and system) the process has used, from
// /proc/self/stat; ok is false where that file does not exist.
func processCPU() (cpu time.Duration, ok bool) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses: state is the
	// first, utime and stime (in USER_HZ ticks, 100 a second) the 12th and 13th.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// cpuMeter measures the process CPU time and the heap allocations made
// per operation.
type cpuMeter struct {
	start   time.Duration
	ok      bool
	mallocs uint64
}

func startCPU() cpuMeter {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	c, ok := processCPU()
	return cpuMeter{start: c, ok: ok, mallocs: ms.Mallocs}
}

// allocsPerOp returns the heap allocations per operation: unlike time, the
// machine's other load does not change them.
func (m cpuMeter) allocsPerOp(ops int) float64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.Mallocs-m.mallocs) / float64(ops)
}

// perOp returns the CPU time per operation in microseconds, or -1 when unknown.
func (m cpuMeter) perOp(ops int) float64 {
	end, ok := processCPU()
	if !m.ok || !ok {
		return -1
	}
	return float64((end - m.start).Microseconds()) / float64(ops)
}

// publishAtRate publishes perTick events every tick until the deadline,
// the events of a tick in one Publish call, and tells published when each
// call started and returned. It returns the number of events published.
func publishAtRate(b *testing.B, p *benchPipeline, pl benchPayload, repos []string, perTick int, tick time.Duration, until time.Time, published func(seq int, start, end time.Time)) int {
	t := time.NewTicker(tick)
	defer t.Stop()
	seq := 0
	for now := time.Now(); now.Before(until); now = <-t.C {
		events := make([]intake.Event, perTick)
		for i := range events {
			events[i] = pl.event(b, repos[(seq+i)%len(repos)], seq+i)
		}
		at := time.Now()
		if n, err := p.pub.Publish(context.Background(), events...); err != nil || n != perTick {
			b.Errorf("Publish = %d, %v; want %d deliveries", n, err, perTick)
			return seq
		}
		end := time.Now()
		for i := range events {
			if published != nil {
				published(seq+i, at, end)
			}
		}
		seq += perTick
	}
	return seq
}

// BenchmarkDeliveryLatencyAt1000EPS publishes a steady 1,000 events/s (20
// every 20 ms, in one Publish call) to four subscriptions for 10 s, with
// kubehook's default concurrency, and prints percentiles of the time from
// the start of the Publish call to the sink having read the request body.
func BenchmarkDeliveryLatencyAt1000EPS(b *testing.B) {
	once(b, &latencyResult, func() map[string]float64 { return measureLatency(b, 1000) })
}

// BenchmarkDeliveryLatencyAt5000EPS is the same at 5,000 events/s (100
// every 20 ms): each Publish call brings 25 deliveries per subscription,
// more than its in-flight limit.
func BenchmarkDeliveryLatencyAt5000EPS(b *testing.B) {
	once(b, &latency5000Result, func() map[string]float64 { return measureLatency(b, 5000) })
}

// measureLatency publishes eps events a second, in one Publish call every
// tick, and prints the latency percentiles as delivery_*_ms_at_<eps>eps.
func measureLatency(b *testing.B, eps int) map[string]float64 {
	const tick = 20 * time.Millisecond
	perTick := eps * int(tick) / int(time.Second)
	duration := envDuration(b, "KUBEHOOK_BENCH_LATENCY_FOR", 10*time.Second)
	capacity := int(duration/tick+2) * perTick

	// Times are kept as offsets from base on the monotonic clock; 0 means unset.
	base := time.Now()
	publishedAt := make([]int64, capacity)
	receivedAt := make([]atomic.Int64, capacity)
	var stray atomic.Int64
	goroutines := runtime.NumGoroutine()
	sink := newBenchSink(func(body []byte, at time.Time) {
		seq, ok := seqOf(body)
		if !ok || seq < 0 || seq >= capacity {
			stray.Add(1)
			return
		}
		receivedAt[seq].CompareAndSwap(0, int64(at.Sub(base))+1) // the first arrival counts
	})
	defer func() { sink.Close(); checkGoroutines(b, goroutines) }()
	pl := newBenchPayload(b)

	var outs benchOutcomes
	p := startBenchPipeline(b, &outs, dispatcher.Options{Concurrency: benchProductionConcurrency})
	defer p.stop(b)
	repos := []string{"bench/a", "bench/b", "bench/c", "bench/d"}
	for i, r := range repos {
		p.subscribe(fmt.Sprintf("sub-%d", i), r, sink.URL)
	}

	// awaitArrivals waits for n requests more than before to have reached
	// the sink, and reports false if they have not within a minute.
	awaitArrivals := func(before int64, n int, what string) bool {
		deadline := time.Now().Add(time.Minute)
		for sink.n.Load()-before < int64(n) {
			if time.Now().After(deadline) {
				b.Errorf("%s: %d of %d deliveries arrived in a minute; %s; %s", what, sink.n.Load()-before, n, &outs, p.queueState())
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}

	// Warm up for half a second at the same rate; the measured sequence starts after.
	before := sink.n.Load()
	if !awaitArrivals(before, publishAtRate(b, p, pl, repos, perTick, tick, time.Now().Add(500*time.Millisecond), nil), "warm-up") {
		return nil
	}
	for i := range receivedAt {
		receivedAt[i].Store(0)
	}

	before = sink.n.Load()
	parkedBefore := testutil.ToFloat64(metrics.ParkedTotal)
	start := time.Now()
	var publishCalls []time.Duration
	published := publishAtRate(b, p, pl, repos, perTick, tick, start.Add(duration), func(seq int, at, end time.Time) {
		publishedAt[seq] = int64(at.Sub(base)) + 1
		if seq%perTick == 0 {
			publishCalls = append(publishCalls, end.Sub(at))
		}
	})
	publishing := time.Since(start)
	awaitArrivals(before, published, "measured run")
	parked := testutil.ToFloat64(metrics.ParkedTotal) - parkedBefore

	lat := make([]time.Duration, 0, published)
	missing := 0
	for seq := range published {
		r := receivedAt[seq].Load()
		if r == 0 {
			if missing < 10 {
				b.Logf("missing: seq %d for %s, published %.3fs into the run", seq, repos[seq%len(repos)], (time.Duration(publishedAt[seq]) - start.Sub(base)).Seconds())
			}
			missing++
			continue
		}
		lat = append(lat, time.Duration(r-publishedAt[seq]))
	}
	if missing > 0 {
		b.Errorf("%d of %d deliveries did not arrive", missing, published)
	}
	if n := outs.failed.Load(); n > 0 {
		b.Errorf("%d delivery attempts failed", n)
	}
	if n := stray.Load(); n > 0 {
		b.Errorf("%d deliveries without a sequence number", n)
	}
	if len(lat) == 0 {
		return nil
	}
	slices.Sort(lat)
	slices.Sort(publishCalls)
	pctOf := func(d []time.Duration, q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
	}
	pct := func(q float64) float64 { return pctOf(lat, q) }
	rate := float64(published) / publishing.Seconds()
	at := fmt.Sprintf("at_%deps", eps)
	fmt.Printf("delivery_latency_events_per_second_%s: %.0f\n", at, rate)
	fmt.Printf("delivery_p50_ms_%s: %.2f\n", at, pct(0.50))
	fmt.Printf("delivery_p90_ms_%s: %.2f\n", at, pct(0.90))
	fmt.Printf("delivery_p99_ms_%s: %.2f\n", at, pct(0.99))
	fmt.Printf("delivery_max_ms_%s: %.2f\n", at, float64(lat[len(lat)-1].Microseconds())/1000)
	// How much of it is the Publish call itself (perTick events, durably stored).
	fmt.Printf("delivery_publish_call_p50_ms_%s: %.2f\n", at, pctOf(publishCalls, 0.50))
	fmt.Printf("delivery_publish_call_p99_ms_%s: %.2f\n", at, pctOf(publishCalls, 0.99))
	fmt.Printf("delivery_parked_share_%s: %.2f\n", at, parked/float64(published))
	return map[string]float64{"events/s": rate, "p50-ms": pct(0.50), "p99-ms": pct(0.99), "max-ms": float64(lat[len(lat)-1].Microseconds()) / 1000}
}

// BenchmarkStatusWritesAt1000EPS delivers 1,000 events/s to one
// subscription for 30 s with the outcome tracker (sync period 10 s) as the
// dispatcher's reporter, and prints how many times it woke the reconciler:
// each wake-up is one status write. The tick due at the end of the window
// is counted.
func BenchmarkStatusWritesAt1000EPS(b *testing.B) {
	once(b, &statusResult, func() map[string]float64 { return measureStatusWrites(b) })
}

func measureStatusWrites(b *testing.B) map[string]float64 {
	const (
		perTick    = 20
		tick       = 20 * time.Millisecond
		syncPeriod = 10 * time.Second
		// slack lets the tick due at the end of the window land inside it.
		slack = 250 * time.Millisecond
	)
	window := envDuration(b, "KUBEHOOK_BENCH_STATUS_FOR", 30*time.Second)

	goroutines := runtime.NumGoroutine()
	sink := newBenchSink(nil)
	defer func() { sink.Close(); checkGoroutines(b, goroutines) }()
	pl := newBenchPayload(b)

	tracker := outcomes.New(syncPeriod)
	p := startBenchPipeline(b, tracker, dispatcher.Options{Concurrency: benchProductionConcurrency})
	defer p.stop(b)
	p.subscribe("hook", "bench/web", sink.URL)

	ctx, cancel := context.WithCancel(context.Background())
	var wakes []time.Duration
	var counting sync.WaitGroup
	stopCounting := make(chan struct{})
	start := time.Now()
	trackerDone := make(chan error, 1)
	go func() { trackerDone <- tracker.Start(ctx) }()
	counting.Go(func() {
		for {
			select {
			case <-tracker.Events():
				wakes = append(wakes, time.Since(start))
			case <-stopCounting:
				return
			}
		}
	})

	published := publishAtRate(b, p, pl, []string{"bench/web"}, perTick, tick, start.Add(window+slack), nil)
	close(stopCounting)
	counting.Wait()
	cancel()
	if err := <-trackerDone; err != nil {
		b.Error(err)
	}
	elapsed := time.Since(start)
	delivered := sink.n.Load()
	// Deliveries still queued when the window closed: at a steady 1,000/s
	// there should be next to none.
	backlog, err := p.q.Pending(context.Background())
	if err != nil {
		b.Error(err)
	}

	writes := 0
	for _, w := range wakes {
		if w <= window+slack {
			writes++
		}
	}
	if st, ok := tracker.Get(types.NamespacedName{Namespace: "bench", Name: "hook"}); !ok || st.ConsecutiveFailures > 0 {
		b.Errorf("tracker state %+v, %v: want a subscription without failures", st, ok)
	}
	rate := float64(delivered) / elapsed.Seconds()
	fmt.Printf("status_bench_published_events: %d\n", published)
	fmt.Printf("status_bench_deliveries_per_second: %.0f\n", rate)
	fmt.Printf("status_bench_backlog_at_end: %d\n", backlog)
	if backlog > uint64(published)/10 {
		b.Logf("%d of %d deliveries still queued at the end of the window; %s", backlog, published, p.queueState())
	}
	fmt.Printf("status_bench_wakeups_at: %v\n", wakes)
	if window == 30*time.Second {
		fmt.Printf("status_writes_per_30s_at_1000eps: %d\n", writes)
	} else {
		fmt.Printf("status_writes_at_1000eps: %d\n", writes)
		fmt.Printf("status_writes_window_seconds: %g\n", window.Seconds())
	}
	return map[string]float64{"status-writes": float64(writes), "deliveries/s": rate}
}
