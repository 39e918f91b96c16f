package scale

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubehook/kubehook/internal/kubehooktest"
)

const (
	// heapProfileEnv, when set to a directory, makes the child write a
	// heap profile there (heap-<n>.pprof) after each collection the
	// benchmark asks for: where the memory per subscription goes.
	heapProfileEnv = "KUBEHOOK_BENCH_HEAP_PROFILE"
	// readyTimeout bounds waiting for kubehook's /readyz.
	readyTimeout = 2 * time.Minute
	// exitTimeout bounds waiting for kubehook run in this process to
	// stop.
	exitTimeout = 30 * time.Second
)

// TestKubehookChild is the kubehook process of this package's benchmarks;
// it runs only as their child (see kubehooktest.RunChild), and there also
// collects garbage on request, for the memory benchmark.
func TestKubehookChild(t *testing.T) {
	if kubehooktest.IsChild() {
		collectOnSignal(t, os.Getenv(heapProfileEnv))
	}
	kubehooktest.RunChild(t)
}

// collectOnSignal runs a garbage collection on each SIGUSR1, and writes a
// heap profile into dir after it when dir is set. A resting Go process
// collects at least every two minutes by itself; the benchmark asks for it
// so as not to wait, and measures what is left after it.
func collectOnSignal(t testing.TB, dir string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		for n := 0; ; n++ {
			<-sig
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("%s%d\n", liveHeapLine, ms.HeapAlloc)
			if dir == "" {
				continue
			}
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("heap-%d.pprof", n)))
			if err != nil {
				t.Log(err)
				continue
			}
			if err := pprof.WriteHeapProfile(f); err != nil {
				t.Log(err)
			}
			_ = f.Close()
		}
	}()
}

// liveHeapLine starts the line in which the child tells its live heap
// after a collection it was asked for.
const liveHeapLine = "scale-live-heap-bytes: "

// collect asks the child for a garbage collection (and a heap profile,
// with heapProfileEnv) and returns its live heap after it, in bytes.
func (p *kubehook) collect(b *testing.B) int64 {
	b.Helper()
	before := strings.Count(p.Out.String(), liveHeapLine)
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := p.Out.String()
		if strings.Count(out, liveHeapLine) > before {
			line := out[strings.LastIndex(out, liveHeapLine)+len(liveHeapLine):]
			line, _, _ = strings.Cut(line, "\n")
			n, err := strconv.ParseInt(line, 10, 64)
			if err != nil {
				b.Fatalf("the child's live heap: %v", err)
			}
			return n
		}
		if err := p.Running(); err != nil {
			b.Fatal(err)
		}
		if time.Now().After(deadline) {
			b.Fatal("the child did not collect within 30s of SIGUSR1")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kubehook is a kubehook child process with the readings these
// benchmarks make of it.
type kubehook struct{ *kubehooktest.Kubehook }

// startChild runs kubehook in a child process against the control plane
// of kubeconfig, with its defaults (every server on a free loopback port)
// and then flags. It is stopped with SIGTERM at the end of the benchmark
// if it still runs, and its output logged if the benchmark failed.
func startChild(b *testing.B, kubeconfig string, flags ...string) *kubehook {
	b.Helper()
	p := kubehooktest.Start(b, kubehooktest.WithKubeconfig(kubeconfig), kubehooktest.WithFlags(flags...))
	// Registered after the harness's SIGKILL, so it runs first: a graceful
	// stop, as users stop kubehook.
	b.Cleanup(func() { _ = p.Term(b) })
	return &kubehook{p}
}

// rssKiB returns the process's resident memory (VmRSS) in KiB.
func (p *kubehook) rssKiB() (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}
