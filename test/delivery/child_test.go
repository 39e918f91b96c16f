package delivery

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

	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubehook/kubehook/internal/app"
)

// The parent test and its kubehook children agree on these.
const (
	childEnv        = "KUBEHOOK_DELIVERY_CHILD"    // "1" in a child
	childDataDirEnv = "KUBEHOOK_DELIVERY_DATA_DIR" // --data-dir
	childArgsEnv    = "KUBEHOOK_DELIVERY_ARGS"     // the other flags, a JSON array

	// childLifetime bounds a child nobody stops.
	childLifetime = 10 * time.Minute
	// exitTimeout bounds waiting for a signalled child to be gone; above
	// the shutdown grace period the children run with.
	exitTimeout = 30 * time.Second
	// outputTail is how much of a child's output a failure shows.
	outputTail = 32 << 10
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

// kubehookConfig is what a kubehook process is started with; a restart
// reuses it, so the new process has the same data directory, token and
// addresses.
type kubehookConfig struct {
	dataDir     string
	token       string // the bearer token of /v1/events
	tokenFile   string
	metricsAddr string
	probeAddr   string
	eventsAddr  string
	// kubeconfig, when set, replaces the admin kubeconfig.
	kubeconfig string
	// flags follow the harness's own, so they override them.
	flags []string
}

// kubehookOption changes the configuration start uses.
type kubehookOption func(*kubehookConfig)

// withKubeconfig runs kubehook with the kubeconfig at path (another
// user's credentials) instead of the admin's.
func withKubeconfig(path string) kubehookOption {
	return func(c *kubehookConfig) { c.kubeconfig = path }
}

// withFlags adds kubehook flags, overriding the harness's defaults
// (a repeated flag keeps its last value).
func withFlags(flags ...string) kubehookOption {
	return func(c *kubehookConfig) { c.flags = append(c.flags, flags...) }
}

func (c *kubehookConfig) args() []string {
	return append([]string{
		"--metrics-bind-address=" + c.metricsAddr,
		// The tests scrape /metrics over plain HTTP without a token.
		"--metrics-secure=false",
		"--health-probe-bind-address=" + c.probeAddr,
		"--events-bind-address=" + c.eventsAddr,
		"--api-bind-address=0",
		"--events-token-file=" + c.tokenFile,
		"--allow-endpoint-cidrs=127.0.0.0/8",
		"--status-sync-period=1s",
		"--shutdown-grace-period=5s",
		"--tenancy=false",
	}, c.flags...)
}

// kubehook is one running (or exited) kubehook child process.
type kubehook struct {
	cfg    *kubehookConfig
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *lockedBuffer // stdout and stderr
	exited chan struct{} // closed once the process is gone
	err    error         // of Wait, once exited is closed
}

// start runs kubehook in a new child process with a fresh data directory,
// token and loopback addresses, changed by opts. The process is killed at
// the end of the test if it still runs, and its output is logged if the
// test failed.
func start(t *testing.T, opts ...kubehookOption) *kubehook {
	t.Helper()
	dir := t.TempDir() // before the child's cleanup: removed after it is gone
	cfg := &kubehookConfig{
		dataDir:     filepath.Join(dir, "data"),
		token:       rand.Text(),
		tokenFile:   filepath.Join(dir, "events-token"),
		metricsAddr: freeAddr(t),
		probeAddr:   freeAddr(t),
		eventsAddr:  freeAddr(t),
	}
	for _, o := range opts {
		o(cfg)
	}
	if err := os.WriteFile(cfg.tokenFile, []byte(cfg.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return run(t, cfg)
}

// restart runs a new kubehook process with p's configuration: the same
// data directory, token and addresses. p should be gone (killed or
// terminated).
func (p *kubehook) restart(t *testing.T) *kubehook {
	t.Helper()
	select {
	case <-p.exited:
	default:
		t.Fatalf("restart of kubehook (pid %d) while it still runs", p.cmd.Process.Pid)
	}
	return run(t, p.cfg)
}

func run(t *testing.T, cfg *kubehookConfig) *kubehook {
	t.Helper()
	args, err := json.Marshal(cfg.args())
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := kubeconfigPath
	if cfg.kubeconfig != "" {
		kubeconfig = cfg.kubeconfig
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKubehookChild$", "-test.count=1", "-test.v",
		"-test.timeout="+childLifetime.String())
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		childDataDirEnv+"="+cfg.dataDir,
		childArgsEnv+"="+string(args),
		"KUBECONFIG="+kubeconfig,
	)
	p := &kubehook{cfg: cfg, cmd: cmd, out: &lockedBuffer{}, exited: make(chan struct{})}
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
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill(t)
		_ = p.stdin.Close()
		if t.Failed() {
			t.Logf("output of kubehook (pid %d), %v:\n%s", cmd.Process.Pid, p.err, p.out.tail(outputTail))
		}
	})
	return p
}

// kill sends SIGKILL and waits until the process is gone.
func (p *kubehook) kill(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGKILL)
}

// term sends SIGTERM, a graceful stop, and waits until the process is
// gone; it returns the process's exit error (nil for a clean stop).
func (p *kubehook) term(t *testing.T) error {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	return p.err
}

func (p *kubehook) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("sending %v to kubehook (pid %d): %v", sig, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(exitTimeout):
		t.Errorf("kubehook (pid %d) still running %s after %v", p.cmd.Process.Pid, exitTimeout, sig)
	}
}

// running returns an error once the process has exited, with its output.
func (p *kubehook) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("kubehook (pid %d) exited: %v\n%s", p.cmd.Process.Pid, p.err, p.out.tail(outputTail))
	default:
		return nil
	}
}

// waitReady waits until kubehook is ready as a producer sees it: /readyz
// answers 200 and the sources server accepts connections (it opens only
// once the subscriptions are loaded). It fails at once if the process
// exits.
func (p *kubehook) waitReady(t *testing.T) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		if err := p.running(); err != nil {
			StopTrying(err.Error()).Now()
		}
		resp, err := http.Get("http://" + p.cfg.probeAddr + "/readyz")
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "/readyz")
		conn, err := net.DialTimeout("tcp", p.cfg.eventsAddr, time.Second)
		g.Expect(err).NotTo(HaveOccurred(), "sources server")
		_ = conn.Close()
	}, apiTimeout, poll).Should(Succeed())
}

// eventsURL is the URL of the sources server's route at path.
func (p *kubehook) eventsURL(path string) string { return "http://" + p.cfg.eventsAddr + path }

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
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
