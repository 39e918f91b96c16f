package scale

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubehook/kubehook/internal/app"
)

// The parent benchmark and its kubehook child agree on these (the pattern
// of test/delivery's harness).
const (
	childEnv     = "KUBEHOOK_SCALE_CHILD" // "1" in a child
	childArgsEnv = "KUBEHOOK_SCALE_ARGS"  // kubehook's flags, a JSON array
	// heapProfileEnv, when set to a directory, makes the child write a
	// heap profile there (heap-<n>.pprof) after each collection the
	// benchmark asks for: where the memory per subscription goes.
	heapProfileEnv = "KUBEHOOK_BENCH_HEAP_PROFILE"

	// childLifetime bounds a child nobody stops.
	childLifetime = 30 * time.Minute
	// exitTimeout bounds waiting for a signalled child to be gone.
	exitTimeout = 30 * time.Second
	// readyTimeout bounds waiting for a child's /readyz.
	readyTimeout = 2 * time.Minute
)

// TestKubehookChild is the kubehook process of this package's benchmarks;
// it runs only as their child. It starts kubehook as main.go does: flags
// bound with app.Options.BindFlags, the kubeconfig found by ctrl.GetConfig
// (KUBECONFIG), SIGTERM a graceful stop.
func TestKubehookChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("the kubehook process of this package's benchmarks")
	}
	// The parent holds stdin open: end with it, whatever becomes of the parent.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(2)
	}()
	collectOnSignal(t, os.Getenv(heapProfileEnv))
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(childArgsEnv)), &args); err != nil {
		t.Fatalf("%s: %v", childArgsEnv, err)
	}
	var opts app.Options
	fs := flag.NewFlagSet("kubehook", flag.ContinueOnError)
	opts.BindFlags(fs)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Run(ctrl.SetupSignalHandler(), cfg, opts); err != nil {
		t.Fatalf("kubehook stopped: %v", err)
	}
}

// collectOnSignal runs a garbage collection on each SIGUSR1, and writes a
// heap profile into dir after it when dir is set. A resting Go process
// collects at least every two minutes by itself; the benchmark asks for it
// so as not to wait, and measures what is left after it.
func collectOnSignal(t *testing.T, dir string) {
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
	before := strings.Count(p.out.String(), liveHeapLine)
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := p.out.String()
		if strings.Count(out, liveHeapLine) > before {
			line := out[strings.LastIndex(out, liveHeapLine)+len(liveHeapLine):]
			line, _, _ = strings.Cut(line, "\n")
			n, err := strconv.ParseInt(line, 10, 64)
			if err != nil {
				b.Fatalf("the child's live heap: %v", err)
			}
			return n
		}
		if err := p.running(); err != nil {
			b.Fatal(err)
		}
		if time.Now().After(deadline) {
			b.Fatal("the child did not collect within 30s of SIGUSR1")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kubehookFlags are the flags of a kubehook that runs with its defaults,
// every server on a free loopback port, against the control plane of
// kubeconfig; extra flags follow and so override them.
type kubehookFlags struct {
	probeAddr string
	args      []string
}

func defaultFlags(b *testing.B, extra ...string) kubehookFlags {
	b.Helper()
	dir := b.TempDir()
	tokenFile := filepath.Join(dir, "events-token")
	if err := os.WriteFile(tokenFile, []byte("scale-benchmark-token\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	f := kubehookFlags{probeAddr: freeAddr(b)}
	f.args = append([]string{
		"--data-dir=" + filepath.Join(dir, "data"),
		"--metrics-bind-address=" + freeAddr(b),
		"--health-probe-bind-address=" + f.probeAddr,
		"--events-bind-address=" + freeAddr(b),
		"--api-bind-address=" + freeAddr(b),
		"--events-token-file=" + tokenFile,
	}, extra...)
	return f
}

// kubehook is one running (or exited) kubehook child process.
type kubehook struct {
	flags  kubehookFlags
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *lockedBuffer
	exited chan struct{}
	err    error
}

// startChild runs kubehook in a child process; it is stopped (SIGTERM) at
// the end of the benchmark if it still runs, and its output logged if the
// benchmark failed.
func startChild(b *testing.B, kubeconfig string, flags kubehookFlags) *kubehook {
	b.Helper()
	args, err := json.Marshal(flags.args)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKubehookChild$", "-test.count=1", "-test.v",
		"-test.timeout="+childLifetime.String())
	cmd.Env = append(os.Environ(), childEnv+"=1", childArgsEnv+"="+string(args), "KUBECONFIG="+kubeconfig)
	p := &kubehook{flags: flags, cmd: cmd, out: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.WaitDelay = 5 * time.Second
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	b.Cleanup(func() {
		p.stop(b)
		_ = p.stdin.Close()
		if b.Failed() {
			b.Logf("output of kubehook (pid %d), %v:\n%s", cmd.Process.Pid, p.err, p.out.tail(32<<10))
		}
	})
	return p
}

// stop sends SIGTERM and waits until the process is gone.
func (p *kubehook) stop(b *testing.B) {
	select {
	case <-p.exited:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		b.Errorf("stopping kubehook (pid %d): %v", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(exitTimeout):
		_ = p.cmd.Process.Kill()
		b.Errorf("kubehook (pid %d) still running %s after SIGTERM", p.cmd.Process.Pid, exitTimeout)
	}
}

// running returns an error once the process has exited.
func (p *kubehook) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("kubehook (pid %d) exited: %v\n%s", p.cmd.Process.Pid, p.err, p.out.tail(32<<10))
	default:
		return nil
	}
}

// waitReady waits until /readyz answers 200: the queue is up and every
// subscription loaded.
func (p *kubehook) waitReady(b *testing.B) {
	b.Helper()
	waitReadyz(b, p.flags.probeAddr, p.running)
}

// waitReadyz waits until the probe server at addr says ready; it fails at
// once when running returns an error (kubehook stopped).
func waitReadyz(b *testing.B, addr string, running func() error) {
	b.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		if err := running(); err != nil {
			b.Fatal(err)
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("kubehook not ready after %s (last: %v)", readyTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rssKiB returns the process's resident memory (VmRSS) in KiB.
func (p *kubehook) rssKiB() (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
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

// lockedBuffer is a bytes.Buffer written by the child's output copier and
// read by the benchmark.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return tail(b.buf.String(), n)
}

// freeAddr returns a loopback address with a port free at the time of the call.
func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return addr
}
