package cluster

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubehook/kubehook/internal/app"
)

// The parent test and its kubehook children agree on these.
const (
	childEnv        = "KUBEHOOK_CLUSTER_CHILD"    // "1" in a child
	childDataDirEnv = "KUBEHOOK_CLUSTER_DATA_DIR" // --data-dir
	childArgsEnv    = "KUBEHOOK_CLUSTER_ARGS"     // the other flags, a JSON array

	// childLifetime bounds a child nobody stops.
	childLifetime = 10 * time.Minute
	// exitTimeout bounds waiting for a killed child to be gone.
	exitTimeout = 30 * time.Second
	// outputTail is how much of a child's output a failure shows.
	outputTail = 16 << 10
)

// TestKubehookChild is the kubehook process of this package's tests; it
// runs only as their child. It starts kubehook as main.go does: flags
// bound with app.Options.BindFlags, the kubeconfig found by
// ctrl.GetConfig (KUBECONFIG), SIGTERM a graceful stop.
func TestKubehookChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("the kubehook process of this package's tests")
	}
	// The parent holds stdin open: end with it, whatever becomes of the parent.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(2)
	}()

	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(childArgsEnv)), &args); err != nil {
		t.Fatalf("%s: %v", childArgsEnv, err)
	}
	var opts app.Options
	fs := flag.NewFlagSet("kubehook", flag.ContinueOnError)
	opts.BindFlags(fs)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(append([]string{"--data-dir=" + os.Getenv(childDataDirEnv)}, args...)); err != nil {
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

// kubehook is one running (or exited) kubehook child process.
type kubehook struct {
	name        string // for messages: replica-0, replica-1, ...
	token       string // the bearer token of /v1/events
	metricsAddr string
	probeAddr   string
	eventsAddr  string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *lockedBuffer // stdout and stderr
	exited chan struct{} // closed once the process is gone
	err    error         // of Wait, once exited is closed
}

// start runs kubehook in a new child process with a fresh data directory,
// token and loopback addresses, and flags after the harness's own (a
// repeated flag keeps its last value). The process is killed at the end of
// the test if it still runs, and its output is logged if the test failed.
func start(t testing.TB, name string, flags ...string) *kubehook {
	t.Helper()
	dir := t.TempDir() // before the child's cleanup: removed after it is gone
	p := &kubehook{
		name:        name,
		token:       rand.Text(),
		metricsAddr: freeAddr(t),
		probeAddr:   freeAddr(t),
		eventsAddr:  freeAddr(t),
		out:         &lockedBuffer{},
		exited:      make(chan struct{}),
	}
	tokenFile := filepath.Join(dir, "events-token")
	if err := os.WriteFile(tokenFile, []byte(p.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args, err := json.Marshal(append([]string{
		"--metrics-bind-address=" + p.metricsAddr,
		// The tests scrape /metrics over plain HTTP without a token.
		"--metrics-secure=false",
		"--health-probe-bind-address=" + p.probeAddr,
		"--events-bind-address=" + p.eventsAddr,
		"--api-bind-address=0",
		"--events-token-file=" + tokenFile,
		"--allow-endpoint-cidrs=127.0.0.0/8",
		"--status-sync-period=" + statusSyncPeriod.String(),
		"--shutdown-grace-period=5s",
		"--tenancy=false",
	}, flags...))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKubehookChild$", "-test.count=1", "-test.v",
		"-test.timeout="+childLifetime.String())
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		childDataDirEnv+"="+filepath.Join(dir, "data"),
		childArgsEnv+"="+string(args),
		"KUBECONFIG="+kubeconfigPath,
	)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.WaitDelay = 5 * time.Second
	// The child ends when this pipe closes: when the test process exits,
	// however it exits.
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill(t)
		_ = p.stdin.Close()
		if t.Failed() {
			t.Logf("output of kubehook %s (pid %d), %v:\n%s", p.name, cmd.Process.Pid, p.err, p.out.tail(outputTail))
		}
	})
	return p
}

// kill sends SIGKILL and waits until the process is gone.
func (p *kubehook) kill(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("killing kubehook %s (pid %d): %v", p.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(exitTimeout):
		t.Errorf("kubehook %s (pid %d) still running %s after SIGKILL", p.name, p.cmd.Process.Pid, exitTimeout)
	}
}

// running returns an error once the process has exited, with its output.
func (p *kubehook) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("kubehook %s (pid %d) exited: %v\n%s", p.name, p.cmd.Process.Pid, p.err, p.out.tail(outputTail))
	default:
		return nil
	}
}

// waitLive waits until kubehook's /healthz answers 200: the process is
// up, its queue set up. It fails the test if the process exits first.
func (p *kubehook) waitLive(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(apiTimeout)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if err := p.running(); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + p.probeAddr + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("/healthz: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubehook %s not live after %s: %v", p.name, apiTimeout, err)
		}
		<-tick.C
	}
}

// ready returns nil once kubehook is ready as a producer sees it: /readyz
// answers 200 and the sources server accepts connections.
func (p *kubehook) ready() error {
	resp, err := http.Get("http://" + p.probeAddr + "/readyz")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	conn, err := net.DialTimeout("tcp", p.eventsAddr, time.Second)
	if err != nil {
		return fmt.Errorf("sources server: %w", err)
	}
	return conn.Close()
}

// lockedBuffer is a bytes.Buffer written by the child's output copier and
// read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail returns the last n bytes written.
func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.Bytes()
	if len(s) <= n {
		return string(s)
	}
	return "...\n" + string(s[len(s)-n:])
}

// freeAddr returns a loopback address with a port free at the time of the call.
func freeAddr(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}
