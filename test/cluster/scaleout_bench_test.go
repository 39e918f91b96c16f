package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubehook/kubehook/internal/kubehooktest"
)

const (
	// Each replica has benchConcurrency workers and the receiver answers
	// after benchDelay however many requests wait, so a replica delivers
	// at most benchConcurrency/benchDelay per second: the bound is meant
	// to be the pool, not the receiver, nor the CPU the attempts take.
	benchConcurrency = 8
	benchDelay       = 100 * time.Millisecond
	// benchSubscriptions, each keyed to a repository of its own: at 8
	// attempts each per replica (--max-in-flight-per-subscription's
	// default) they could hold far more than a replica's pool, so no
	// subscription's limit binds. Until its first success a subscription
	// has 2, and all such together half the pool; that is over well before
	// the first mark.
	benchSubscriptions = 24
	// Deliveries per phase: about 15 s and 8 s at the pool's rate (80/s
	// with one replica, 240/s with three).
	benchOneReplica    = 1200
	benchThreeReplicas = 2000
	// The rate is measured between these marks of a phase's arrivals: past
	// the start (new subscriptions have fewer slots until their first
	// success, consumers and connections start) and before the tail (the
	// last lines run dry one after another).
	benchFrom, benchTo = 0.20, 0.90
	// benchPhaseTimeout bounds a phase, several times what it takes.
	benchPhaseTimeout = 2 * time.Minute
	// benchStopTimeout bounds a replica's graceful stop (its grace period
	// is 5s).
	benchStopTimeout = 30 * time.Second
)

var scaleOutResult map[string]float64

// BenchmarkScaleOut measures deliveries per second with one kubehook
// replica and with three on the same NATS JetStream cluster, I/O-bound
// (each replica --delivery-concurrency=8, a receiver answering after
// 100 ms), and prints their ratio as delivery_scaleout_ratio_3_vs_1.
// One replica runs first; two more join it for the second phase. In each
// phase every event is posted at once, to the running replicas in turn,
// so a backlog waits for the workers throughout the measured window.
func BenchmarkScaleOut(b *testing.B) {
	// One run takes about 40 s.
	kubehooktest.MeasureOnce(b, &scaleOutResult, measureScaleOut)
}

// scaleOutPhase is what one phase measured.
type scaleOutPhase struct {
	name    string
	rate    float64       // deliveries per second between the marks
	window  time.Duration // between the marks
	start   time.Duration // from the first post to the first mark
	posting time.Duration // posting every event of the phase
	total   time.Duration // from the first post to the last answer
	extra   int           // requests beyond one per delivery (redeliveries)
	// Per replica: deliveries (2xx) in the window, deliveries parked and
	// consumer errors in the phase, mean HTTP attempt and worker time per
	// delivery (its workers over its rate) in the window, in ms. Worker
	// time above the HTTP attempt is spent fetching, admitting and acking,
	// or idle.
	shares, parked, consumerErrors []int
	attempt, workerTime            []float64
	inFlight                       float64 // requests at the receiver at once, on average over the window
	cpu                            cpuUse  // over the window
	// gap is the longest a subscription went without an answer in the
	// phase; errors are what the replicas logged as errors in it.
	gap    string
	errors []string
}

func (ph scaleOutPhase) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %.1f deliveries/s over %s, between the %.0f%% and %.0f%% marks of the arrivals (the first %s after the first post); events posted in %s, the last answered after %s, %d redeliveries\n",
		ph.name, ph.rate, ph.window.Round(time.Millisecond), 100*benchFrom, 100*benchTo, ph.start.Round(time.Millisecond),
		ph.posting.Round(time.Millisecond), ph.total.Round(time.Millisecond), ph.extra)
	fmt.Fprintf(&b, "  per replica in the window: deliveries %v (%s), mean HTTP attempt %s ms, worker time per delivery %s ms (%d workers); %.1f requests at the receiver at once on average\n",
		ph.shares, sharesText(ph.shares), floats(ph.attempt), floats(ph.workerTime), benchConcurrency, ph.inFlight)
	fmt.Fprintf(&b, "  CPU in the window: %s\n", ph.cpu)
	logged := "none"
	if len(ph.errors) > 0 {
		logged = strings.Join(ph.errors, "; ")
	}
	fmt.Fprintf(&b, "  in the phase: parked per replica %v, consumer errors per replica %v; longest a subscription went without an answer: %s; errors logged: %s",
		ph.parked, ph.consumerErrors, ph.gap, logged)
	return b.String()
}

func measureScaleOut(b *testing.B) map[string]float64 {
	electionNS := cp.NewNamespace(b, "kubehook-system")
	ns := cp.NewNamespace(b, "scaleout")
	rcv := newArrivals(b, benchDelay)

	names := make([]string, benchSubscriptions)
	repos := make([]string, benchSubscriptions)
	for i := range names {
		names[i] = fmt.Sprintf("repo-%d", i)
		repos[i] = ns + "/" + names[i]
		if err := k8s.Create(b.Context(), kubehooktest.TagPushSubscription(ns, names[i], repos[i], rcv.endpoint(names[i]))); err != nil {
			b.Fatalf("creating WebhookSubscription %s/%s: %v", ns, names[i], err)
		}
	}

	var replicas []*kubehook
	defer func() { stopReplicas(b, replicas) }()
	// One after the other (see startReplica).
	addReplicas := func(n int) {
		for range n {
			p := startReplica(b, fmt.Sprintf("replica-%d", len(replicas)), electionNS,
				fmt.Sprintf("--delivery-concurrency=%d", benchConcurrency))
			replicas = append(replicas, p)
		}
		waitReplicasReady(b, replicas, make([]replicaFigures, len(replicas)))
	}

	addReplicas(1)
	if _, err := waitStatus(ns, names, apiTimeout, notReady); err != nil {
		b.Fatalf("subscriptions not Ready: %v", err)
	}
	one := runScaleOutPhase(b, "1 replica", replicas, rcv, repos, 0, benchOneReplica)
	addReplicas(2)
	three := runScaleOutPhase(b, "3 replicas", replicas, rcv, repos, benchOneReplica, benchThreeReplicas)

	ratio := three.rate / one.rate
	// Eight lines: the testing package shows no more than ten of a benchmark's.
	b.Logf("%s\n%s", one, three)
	fmt.Printf("delivery_scaleout_1_replica_per_second: %.1f\n", one.rate)
	fmt.Printf("delivery_scaleout_3_replicas_per_second: %.1f\n", three.rate)
	fmt.Printf("delivery_scaleout_3_replicas_least_share: %.2f\n", leastShare(three.shares))
	// The ratio holds only as far as both phases had the same CPU to
	// spare: on a machine shared with other work, this says how much
	// they did not.
	fmt.Printf("delivery_scaleout_1_replica_other_cpu_cores: %.2f\n", one.cpu.others())
	fmt.Printf("delivery_scaleout_3_replicas_other_cpu_cores: %.2f\n", three.cpu.others())
	fmt.Printf("delivery_scaleout_ratio_3_vs_1: %.2f\n", ratio)
	return map[string]float64{"1-replica-deliveries/s": one.rate, "3-replica-deliveries/s": three.rate, "ratio-3-vs-1": ratio}
}

// runScaleOutPhase posts count events, numbered from first, one per
// repository in turn, in requests to the replicas in turn, and waits
// until the receiver has answered every delivery. The replicas' figures
// are read at the marks, so they are of the window.
func runScaleOutPhase(b *testing.B, name string, replicas []*kubehook, rcv *arrivals, repos []string, first, count int) scaleOutPhase {
	b.Helper()
	ph := scaleOutPhase{name: name}
	base := rcv.answeredCount()
	requestsBefore := rcv.requestCount()
	parkedBefore := readMetric(b, replicas, "kubehook_parked_deliveries_total")
	errorsBefore := readMetric(b, replicas, "kubehook_queue_consumer_errors_total")
	outputFrom := make([]int, len(replicas))
	for i, p := range replicas {
		outputFrom[i] = p.Out.Len()
	}

	posted := time.Now()
	for req, n := 0, first; n < first+count; req, n = req+1, n+len(repos) {
		batch := make([]kubehooktest.NativeEvent, 0, len(repos))
		for i := n; i < min(n+len(repos), first+count); i++ {
			batch = append(batch, kubehooktest.TagPushEvent(repos[i%len(repos)], i))
		}
		p := replicas[req%len(replicas)]
		a, err := p.PostEvents(batch...)
		if err != nil {
			b.Fatalf("%s: posting events %d..%d to %s: %v", name, n, n+len(batch)-1, p.Name, err)
		}
		if a.Deliveries != len(batch) {
			b.Fatalf("%s: %s queued %d deliveries for %d events", name, p.Name, a.Deliveries, len(batch))
		}
	}
	ph.posting = time.Since(posted)

	from, to := int(benchFrom*float64(count)), int(benchTo*float64(count))
	deadline := posted.Add(benchPhaseTimeout)
	await := func(n int) {
		if err := rcv.await(base+n, deadline, allRunning(replicas)); err != nil {
			b.Fatalf("%s: %v; %d of %d deliveries answered", name, err, rcv.answeredCount()-base, count)
		}
	}
	await(from)
	okFrom := readMetric(b, replicas, "kubehook_deliveries_total", "result", "success")
	cpuFrom := sampleCPU(replicas)
	areaFrom, areaFromAt := rcv.inFlightArea()
	attemptsFrom := readAttempts(b, replicas)
	await(to)
	okTo := readMetric(b, replicas, "kubehook_deliveries_total", "result", "success")
	ph.cpu = sampleCPU(replicas).since(cpuFrom)
	areaTo, areaToAt := rcv.inFlightArea()
	ph.inFlight = (areaTo - areaFrom) / areaToAt.Sub(areaFromAt).Seconds()
	attemptsTo := readAttempts(b, replicas)
	await(count)
	ph.total = time.Since(posted)

	times := rcv.answerTimes(first, first+count)
	ph.start = times[from-1].Sub(posted)
	ph.window = times[to-1].Sub(times[from-1])
	ph.rate = float64(to-from) / ph.window.Seconds()
	ph.extra = rcv.requestCount() - requestsBefore - count
	parkedAfter := readMetric(b, replicas, "kubehook_parked_deliveries_total")
	errorsAfter := readMetric(b, replicas, "kubehook_queue_consumer_errors_total")
	for i := range replicas {
		ph.shares = append(ph.shares, okTo[i]-okFrom[i])
		ph.parked = append(ph.parked, parkedAfter[i]-parkedBefore[i])
		ph.consumerErrors = append(ph.consumerErrors, errorsAfter[i]-errorsBefore[i])
		n := attemptsTo[i].count - attemptsFrom[i].count
		ph.attempt = append(ph.attempt, 1000*(attemptsTo[i].sum-attemptsFrom[i].sum)/n)
		// Little's law, the pool being full throughout.
		ph.workerTime = append(ph.workerTime, 1000*benchConcurrency*attemptsTo[i].at.Sub(attemptsFrom[i].at).Seconds()/n)
	}
	ph.gap = rcv.longestGap(first, first+count, len(repos), posted)
	for i, p := range replicas {
		ph.errors = append(ph.errors, loggedErrors(p, outputFrom[i])...)
	}
	return ph
}

// loggedErrors returns the errors p logged from offset on in its output,
// each with how many times it was logged.
func loggedErrors(p *kubehook, offset int) []string {
	var order []string
	counts := map[string]int{}
	for _, line := range strings.Split(p.Out.Since(offset), "\n") {
		var entry struct {
			Level    string `json:"level"`
			Msg      string `json:"msg"`
			Consumer string `json:"consumer"`
			Error    string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil || entry.Level != "error" {
			continue
		}
		key := fmt.Sprintf("%s: %s", entry.Msg, entry.Error)
		if entry.Consumer != "" {
			// One consumer per subscription: their names would make every error distinct.
			kind, _, _ := strings.Cut(entry.Consumer, "-parked-")
			if kind != entry.Consumer {
				kind += "-parked-<uid>"
			}
			key = fmt.Sprintf("%s (%s): %s", entry.Msg, kind, entry.Error)
		}
		if counts[key] == 0 {
			order = append(order, key)
		}
		counts[key]++
	}
	out := make([]string, len(order))
	for i, key := range order {
		out[i] = fmt.Sprintf("%s %d× %s", p.Name, counts[key], key)
	}
	return out
}

// readMetric reads a counter of every replica, summed over the samples
// whose labels include the label pairs given.
func readMetric(b *testing.B, replicas []*kubehook, name string, labelPairs ...string) []int {
	b.Helper()
	labels := map[string]string{}
	for i := 0; i+1 < len(labelPairs); i += 2 {
		labels[labelPairs[i]] = labelPairs[i+1]
	}
	out := make([]int, len(replicas))
	for i, p := range replicas {
		v, err := p.Metric(name, labels)
		if err != nil {
			b.Fatalf("%s: %s: %v", p.Name, name, err)
		}
		out[i] = int(v)
	}
	return out
}

// attempts is a replica's kubehook_delivery_duration_seconds so far.
type attempts struct {
	at         time.Time
	count, sum float64
}

// readAttempts reads every replica's histogram of HTTP attempt durations.
func readAttempts(b *testing.B, replicas []*kubehook) []attempts {
	b.Helper()
	out := make([]attempts, len(replicas))
	for i, p := range replicas {
		out[i].at = time.Now()
		families, err := p.Scrape()
		if err != nil {
			b.Fatalf("%s: %v", p.Name, err)
		}
		for _, m := range families["kubehook_delivery_duration_seconds"].GetMetric() {
			out[i].count += float64(m.GetHistogram().GetSampleCount())
			out[i].sum += m.GetHistogram().GetSampleSum()
		}
	}
	return out
}

func floats(v []float64) string {
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = fmt.Sprintf("%.1f", f)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// leastShare is the smallest replica's fraction of the deliveries.
func leastShare(shares []int) float64 {
	total := 0
	for _, n := range shares {
		total += n
	}
	if total == 0 {
		return 0
	}
	return float64(slices.Min(shares)) / float64(total)
}

// sharesText is each replica's percentage of the deliveries.
func sharesText(shares []int) string {
	total := 0
	for _, n := range shares {
		total += n
	}
	parts := make([]string, len(shares))
	for i, n := range shares {
		parts[i] = fmt.Sprintf("replica-%d %.0f%%", i, percent(n, total))
	}
	return strings.Join(parts, ", ")
}

// stopReplicas stops every replica with SIGTERM, as a Deployment scales
// down, so each hands back what it fetched and releases the Lease, and
// waits until they are gone; one still running after benchStopTimeout is
// killed.
func stopReplicas(b *testing.B, replicas []*kubehook) {
	for _, p := range replicas {
		if err := p.Signal(syscall.SIGTERM); err != nil {
			b.Error(err)
		}
	}
	timeout := time.After(benchStopTimeout)
	for _, p := range replicas {
		select {
		case <-p.Exited():
		case <-timeout:
			b.Errorf("kubehook %s still running %s after SIGTERM", p.Name, benchStopTimeout)
			p.Kill(b)
		}
	}
}

// arrivals is the benchmark's endpoint: it answers every request 200
// after its delay, however many wait (each on a goroutine of its own),
// and records when each event (its tag) was first answered.
type arrivals struct {
	*httptest.Server
	delay   time.Duration
	changed chan struct{} // signalled after every answer

	mu       sync.Mutex
	answered map[string]time.Time
	requests int
	// inFlight requests are being answered; area is their integral over
	// time (request-seconds) up to areaAt.
	inFlight int
	area     float64
	areaAt   time.Time
}

func newArrivals(tb testing.TB, delay time.Duration) *arrivals {
	a := &arrivals{delay: delay, changed: make(chan struct{}, 1), answered: map[string]time.Time{}, areaAt: time.Now()}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	tb.Cleanup(a.Close)
	return a
}

// endpoint is the URL a subscription named sub delivers to.
func (a *arrivals) endpoint(sub string) string { return a.URL + "/hooks/" + sub }

func (a *arrivals) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	tag, ok := kubehooktest.TagKey(body)
	a.mu.Lock()
	a.requests++
	a.addInFlight(1)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.addInFlight(-1)
		a.mu.Unlock()
	}()
	if err != nil || !ok {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	timer := time.NewTimer(a.delay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-req.Context().Done():
		return
	}
	a.mu.Lock()
	if _, seen := a.answered[tag]; !seen {
		a.answered[tag] = time.Now()
	}
	a.mu.Unlock()
	select {
	case a.changed <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusOK)
}

// addInFlight counts delta more requests in flight; mu is held.
func (a *arrivals) addInFlight(delta int) {
	now := time.Now()
	a.area += float64(a.inFlight) * now.Sub(a.areaAt).Seconds()
	a.areaAt = now
	a.inFlight += delta
}

// inFlightArea returns the request-seconds spent answering so far.
func (a *arrivals) inFlightArea() (float64, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addInFlight(0)
	return a.area, a.areaAt
}

func (a *arrivals) answeredCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.answered)
}

func (a *arrivals) requestCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests
}

// answerTimes returns when events first..last-1 were first answered, in
// order of time; an event not answered is left out.
func (a *arrivals) answerTimes(first, last int) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]time.Time, 0, last-first)
	for n := first; n < last; n++ {
		if t, ok := a.answered[kubehooktest.NumberedTag(n)]; ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// longestGap finds the longest time between two answers of one
// subscription (by the number of its repository, of subs) among events
// first..last-1, the first post counting as its first answer.
func (a *arrivals) longestGap(first, last, subs int, posted time.Time) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	per := map[int][]time.Time{}
	for i := first; i < last; i++ {
		if t, ok := a.answered[kubehooktest.NumberedTag(i)]; ok {
			per[i%subs] = append(per[i%subs], t)
		}
	}
	var best time.Duration
	var out string
	for sub, ts := range per {
		slices.SortFunc(ts, time.Time.Compare)
		prev := posted
		for j, t := range ts {
			if g := t.Sub(prev); g > best {
				best = g
				out = fmt.Sprintf("repo-%d, %s, from %s to %s after the first post, then %d more answers",
					sub, g.Round(time.Millisecond), prev.Sub(posted).Round(time.Millisecond), t.Sub(posted).Round(time.Millisecond), len(ts)-j-1)
			}
			prev = t
		}
	}
	return out
}

// await waits until n events are answered, running check every
// kubehooktest.CheckInterval; its error, or the deadline, ends the wait.
func (a *arrivals) await(n int, deadline time.Time, check func() error) error {
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	tick := time.NewTicker(kubehooktest.CheckInterval)
	defer tick.Stop()
	for a.answeredCount() < n {
		select {
		case <-a.changed:
		case <-tick.C:
			if err := check(); err != nil {
				return err
			}
		case <-timeout.C:
			return errors.New("timed out")
		}
	}
	return nil
}

// cpuSample is CPU time used so far: by the machine (every process, of
// this benchmark or not), by this process (the NATS servers, the
// receiver), by its other children (the control plane) and by each
// replica. Read from /proc; a figure that cannot be read is left zero.
type cpuSample struct {
	at                 time.Time
	machine, machineT  time.Duration // busy, and busy plus idle, over all cores
	self, controlPlane time.Duration
	replicas           []time.Duration
}

// cpuUse is CPU time over a window, in cores (1 = one core busy throughout).
type cpuUse struct {
	machine, machineOf float64 // busy cores of how many
	self, controlPlane float64
	replicas           []float64
}

func (u cpuUse) String() string {
	if u.machineOf == 0 {
		return "not known"
	}
	parts := make([]string, len(u.replicas))
	for i, r := range u.replicas {
		parts[i] = fmt.Sprintf("%.2f", r)
	}
	return fmt.Sprintf("%.2f of %.0f cores busy: the NATS servers and receiver %.2f, the replicas [%s], the control plane %.2f, other processes %.2f",
		u.machine, u.machineOf, u.self, strings.Join(parts, " "), u.controlPlane, u.others())
}

// others is the CPU used by processes not of this benchmark, in cores;
// -1 when not known.
func (u cpuUse) others() float64 {
	if u.machineOf == 0 {
		return -1
	}
	o := u.machine - u.self - u.controlPlane
	for _, r := range u.replicas {
		o -= r
	}
	return max(o, 0)
}

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

func sampleCPU(replicas []*kubehook) cpuSample {
	s := cpuSample{at: time.Now()}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		var total, idle int64
		for i, f := range fields[1:] {
			n, _ := strconv.ParseInt(f, 10, 64)
			if i >= 8 { // guest times are counted in user already
				break
			}
			total += n
			if i == 3 || i == 4 {
				idle += n
			}
		}
		s.machine, s.machineT = time.Duration(total-idle)*clockTick, time.Duration(total)*clockTick
	}
	self := os.Getpid()
	s.self, _ = procCPU(self)
	isReplica := map[int]bool{}
	for _, p := range replicas {
		isReplica[p.Pid()] = true
		cpu, _ := procCPU(p.Pid())
		s.replicas = append(s.replicas, cpu)
	}
	// etcd and kube-apiserver are this process's other children.
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || isReplica[pid] {
			continue
		}
		if cpu, parent := procCPU(pid); parent == self {
			s.controlPlane += cpu
		}
	}
	return s
}

// procCPU is the user and system time of process pid, and its parent's
// pid, from /proc.
func procCPU(pid int) (time.Duration, int) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// The fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 {
		return 0, 0
	}
	parent, _ := strconv.Atoi(fields[1])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * clockTick, parent
}

func (s cpuSample) since(from cpuSample) cpuUse {
	wall := s.at.Sub(from.at).Seconds()
	if wall <= 0 || s.machineT == 0 {
		return cpuUse{}
	}
	u := cpuUse{
		machine:      (s.machine - from.machine).Seconds() / wall,
		machineOf:    math.Round((s.machineT - from.machineT).Seconds() / wall),
		self:         (s.self - from.self).Seconds() / wall,
		controlPlane: (s.controlPlane - from.controlPlane).Seconds() / wall,
	}
	for i := range s.replicas {
		var before time.Duration
		if i < len(from.replicas) {
			before = from.replicas[i]
		}
		u.replicas = append(u.replicas, (s.replicas[i]-before).Seconds()/wall)
	}
	return u
}
