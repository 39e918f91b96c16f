package kubehooktest

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubehook/kubehook/internal/app"
)

// The test and its kubehook children agree on these.
const (
	childEnv     = "KUBEHOOK_TEST_CHILD"      // "1" in a child
	childArgsEnv = "KUBEHOOK_TEST_CHILD_ARGS" // kubehook's flags, a JSON array

	// childLifetime bounds a child nobody stops (its -test.timeout); above
	// the longest benchmark.
	childLifetime = 30 * time.Minute
	// exitTimeout bounds waiting for a signalled child to be gone; above
	// the shutdown grace periods the children run with.
	exitTimeout = 30 * time.Second
	// outputTail is how much of a child's output a failure shows.
	outputTail = 32 << 10
)

// IsChild reports whether this test binary runs as a kubehook child; its
// TestMain then only runs the tests (RunChild), with no control plane of
// its own.
func IsChild() bool { return os.Getenv(childEnv) == "1" }

// RunChild is the body of a package's TestKubehookChild: in a child it runs
// kubehook as main.go does (flags bound with app.Options.BindFlags, the
// kubeconfig found by ctrl.GetConfig from KUBECONFIG, SIGTERM a graceful
// stop) until it stops; in the test itself it skips.
func RunChild(t testing.TB) {
	t.Helper()
	if !IsChild() {
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

// FunctionalFlags are the flags the functional tests run kubehook with:
// /metrics over plain HTTP without a token (the tests scrape it), no DTR
// API, loopback endpoints allowed (the receivers are on loopback), status
// written every second and a short grace period (so the tests need not
// wait), and no tenancy (keys need no namespace annotation).
func FunctionalFlags() []string {
	return []string{
		"--metrics-secure=false",
		"--api-bind-address=0",
		"--allow-endpoint-cidrs=127.0.0.0/8",
		"--status-sync-period=1s",
		"--shutdown-grace-period=5s",
		"--tenancy=false",
	}
}

// Config is what a kubehook process runs with: where it keeps its state
// and listens, set by NewConfig, and what the options say. A restart
// reuses it, so the new process has the same data directory, token and
// addresses.
type Config struct {
	// Name tells the process apart in messages (replica-0); may be empty.
	Name string
	// Kubeconfig is the kubeconfig file of the cluster kubehook runs
	// against; Start needs it.
	Kubeconfig string
	// Flags follow the harness's own (Args), so they override them: a
	// repeated flag keeps its last value.
	Flags []string

	DataDir   string // --data-dir, in the test's temporary directory
	Token     string // the bearer token /v1/events accepts
	TokenFile string // --events-token-file, holding Token
	// The loopback addresses of kubehook's servers, each on a free port
	// (unless Flags turn a server off).
	MetricsAddr, ProbeAddr, EventsAddr, APIAddr string
}

// Option changes the Config NewConfig makes.
type Option func(*Config)

// Named names the process in messages.
func Named(name string) Option { return func(c *Config) { c.Name = name } }

// WithKubeconfig runs kubehook against the cluster of the kubeconfig at
// path; a later WithKubeconfig replaces an earlier one.
func WithKubeconfig(path string) Option { return func(c *Config) { c.Kubeconfig = path } }

// WithFlags adds kubehook flags after those already given.
func WithFlags(flags ...string) Option {
	return func(c *Config) { c.Flags = append(c.Flags, flags...) }
}

// NewConfig returns a Config with a fresh data directory and token (its
// file written) and free loopback addresses, changed by opts. Everything
// is removed at the end of the test.
func NewConfig(t testing.TB, opts ...Option) *Config {
	t.Helper()
	dir := t.TempDir()
	c := &Config{
		DataDir:     filepath.Join(dir, "data"),
		Token:       rand.Text(),
		TokenFile:   filepath.Join(dir, "events-token"),
		MetricsAddr: FreeAddr(t),
		ProbeAddr:   FreeAddr(t),
		EventsAddr:  FreeAddr(t),
		APIAddr:     FreeAddr(t),
	}
	for _, o := range opts {
		o(c)
	}
	if err := os.WriteFile(c.TokenFile, []byte(c.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// Args are kubehook's flags: the data directory, token file and addresses
// of c, then c.Flags.
func (c *Config) Args() []string {
	return append([]string{
		"--data-dir=" + c.DataDir,
		"--metrics-bind-address=" + c.MetricsAddr,
		"--health-probe-bind-address=" + c.ProbeAddr,
		"--events-bind-address=" + c.EventsAddr,
		"--api-bind-address=" + c.APIAddr,
		"--events-token-file=" + c.TokenFile,
	}, c.Flags...)
}

// Kubehook is one running (or exited) kubehook child process.
type Kubehook struct {
	*Config
	// Out is the process's stdout and stderr.
	Out *Output

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{} // closed once the process is gone
	err    error         // of Wait, once exited is closed
}

// Start runs kubehook in a new child process of the test binary (its
// TestKubehookChild, which calls RunChild) with a new Config.
func Start(t testing.TB, opts ...Option) *Kubehook {
	t.Helper()
	return Run(t, NewConfig(t, opts...))
}

// Run runs kubehook in a new child process with cfg. The process is killed
// at the end of the test if it still runs, and its output is logged if the
// test failed.
func Run(t testing.TB, cfg *Config) *Kubehook {
	t.Helper()
	if cfg.Kubeconfig == "" {
		t.Fatal("kubehooktest: no kubeconfig to run kubehook against (WithKubeconfig)")
	}
	args, err := json.Marshal(cfg.Args())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKubehookChild$", "-test.count=1", "-test.v",
		"-test.timeout="+childLifetime.String())
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		childArgsEnv+"="+string(args),
		"KUBECONFIG="+cfg.Kubeconfig,
	)
	p := &Kubehook{Config: cfg, cmd: cmd, Out: &Output{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Out, p.Out
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
		p.Kill(t)
		_ = p.stdin.Close()
		if t.Failed() {
			t.Logf("output of %s, %v:\n%s", p, p.err, p.Out.Tail(outputTail))
		}
	})
	return p
}

// String names the process in messages: kubehook replica-0 (pid 1234).
func (p *Kubehook) String() string {
	if p.Name == "" {
		return fmt.Sprintf("kubehook (pid %d)", p.Pid())
	}
	return fmt.Sprintf("kubehook %s (pid %d)", p.Name, p.Pid())
}

// Pid is the process's id.
func (p *Kubehook) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process is gone.
func (p *Kubehook) Exited() <-chan struct{} { return p.exited }

// Restart runs a new kubehook process with p's Config: the same data
// directory, token and addresses. p should be gone (killed or terminated).
func (p *Kubehook) Restart(t testing.TB) *Kubehook {
	t.Helper()
	select {
	case <-p.exited:
	default:
		t.Fatalf("restart of %s while it still runs", p)
	}
	return Run(t, p.Config)
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Kubehook) Kill(t testing.TB) {
	t.Helper()
	p.signalAndWait(t, syscall.SIGKILL)
}

// Term sends SIGTERM, a graceful stop, and waits until the process is
// gone; it returns the process's exit error (nil for a clean stop).
func (p *Kubehook) Term(t testing.TB) error {
	t.Helper()
	p.signalAndWait(t, syscall.SIGTERM)
	return p.err
}

// Signal sends sig and returns at once; a process already gone is not an
// error.
func (p *Kubehook) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("sending %v to %s: %w", sig, p, err)
	}
	return nil
}

func (p *Kubehook) signalAndWait(t testing.TB, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	if err := p.Signal(sig); err != nil {
		t.Error(err)
	}
	select {
	case <-p.exited:
	case <-time.After(exitTimeout):
		t.Errorf("%s still running %s after %v", p, exitTimeout, sig)
	}
}

// Running returns an error once the process has exited, with its output.
func (p *Kubehook) Running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited: %v\n%s", p, p.err, p.Out.Tail(outputTail))
	default:
		return nil
	}
}
