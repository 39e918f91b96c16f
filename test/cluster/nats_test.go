package cluster

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsclient "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kubehook/kubehook/internal/kubehooktest"
)

const (
	natsClusterName = "kubehook-test"
	// natsTimeout bounds a NATS server's start and the cluster's agreeing
	// on a JetStream meta leader.
	natsTimeout = 30 * time.Second
)

// natsCluster is a NATS JetStream cluster in the test process, its servers
// routed to one another on loopback, each with a file store of its own.
type natsCluster struct {
	dir     string
	servers []*natsServer
}

// natsServer is one server of the cluster. Its ports and store outlive
// it, so a restart comes back as the same member.
type natsServer struct {
	name        string
	clientPort  int
	clusterPort int
	storeDir    string
	routes      []*url.URL

	mu  sync.Mutex
	srv *server.Server // nil while down
}

// startNATSCluster starts n servers and waits until JetStream works
// cluster-wide: a meta leader elected that sees every server.
func startNATSCluster(n int) (*natsCluster, error) {
	dir, err := os.MkdirTemp("", "kubehook-nats-")
	if err != nil {
		return nil, err
	}
	c := &natsCluster{dir: dir}
	for i := range n {
		s := &natsServer{name: fmt.Sprintf("nats-%d", i), storeDir: filepath.Join(dir, fmt.Sprintf("nats-%d", i))}
		if s.clientPort, err = kubehooktest.FreePort(); err != nil {
			return nil, err
		}
		if s.clusterPort, err = kubehooktest.FreePort(); err != nil {
			return nil, err
		}
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		var routes []string
		for _, o := range c.servers {
			if o != s {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.clusterPort))
			}
		}
		s.routes = server.RoutesFromStr(strings.Join(routes, ","))
	}
	for _, s := range c.servers {
		if err := s.start(); err != nil {
			c.stop()
			return nil, err
		}
	}
	if err := c.waitJetStream(); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (s *natsServer) options() *server.Options {
	return &server.Options{
		ServerName:         s.name,
		Host:               "127.0.0.1",
		Port:               s.clientPort,
		NoSigs:             true,
		NoLog:              true,
		JetStream:          true,
		StoreDir:           s.storeDir,
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		Cluster: server.ClusterOpts{
			Name: natsClusterName,
			Host: "127.0.0.1",
			Port: s.clusterPort,
		},
		Routes: s.routes,
	}
}

// start starts the server on its ports and store, and waits until it
// accepts clients.
func (s *natsServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return fmt.Errorf("NATS server %s is running", s.name)
	}
	srv, err := server.NewServer(s.options())
	if err != nil {
		return fmt.Errorf("NATS server %s: %w", s.name, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(natsTimeout) {
		srv.Shutdown()
		return fmt.Errorf("NATS server %s not accepting clients after %s", s.name, natsTimeout)
	}
	s.srv = srv
	return nil
}

// kill stops the server at once, without lame-duck mode: clients and
// routes are cut with no notice. An in-process server cannot be sent
// SIGKILL; Shutdown is the closest there is, and gentler than a kill in
// that it first hands off the raft leaderships it holds and closes its
// store cleanly.
func (s *natsServer) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// running returns the running server, or nil.
func (s *natsServer) running() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// url is the comma-separated client URLs of every server, as kubehook's
// --nats-url takes them.
func (c *natsCluster) url() string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", s.clientPort)
	}
	return strings.Join(urls, ",")
}

// waitJetStream waits until every running server is current with a meta
// leader that sees all of them, and a stream replicated on all of them can
// be created: just after start, a meta leader can answer while a stream's
// raft group cannot form yet, and a stream created then may take many
// seconds to answer.
func (c *natsCluster) waitJetStream() error {
	ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
	defer cancel()
	nc, err := natsclient.Connect(c.url(), natsclient.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connecting to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.jetStreamState(ctx, js)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("NATS JetStream cluster not ready after %s: %w", natsTimeout, err)
		case <-tick.C:
		}
	}
}

func (c *natsCluster) jetStreamState(ctx context.Context, js jetstream.JetStream) error {
	running, leaders := 0, 0
	for _, s := range c.servers {
		srv := s.running()
		if srv == nil {
			continue
		}
		running++
		if !srv.JetStreamIsCurrent() {
			return fmt.Errorf("%s is not current with the meta leader", s.name)
		}
		if srv.JetStreamIsLeader() {
			leaders++
			if peers := srv.JetStreamClusterPeers(); len(peers) < running {
				return fmt.Errorf("meta leader %s sees %d servers online: %v", s.name, len(peers), peers)
			}
		}
	}
	if leaders != 1 {
		return fmt.Errorf("%d meta leaders", leaders)
	}
	reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(reqCtx); err != nil {
		return err
	}
	// Creating it again, once the first try timed out, finds it in place.
	probe := jetstream.StreamConfig{Name: "KUBEHOOK_TEST_READY", Subjects: []string{"kubehook-test.ready"}, Replicas: running, Storage: jetstream.MemoryStorage}
	if _, err := js.CreateStream(reqCtx, probe); err != nil {
		return fmt.Errorf("creating an R%d stream: %w", running, err)
	}
	if err := js.DeleteStream(reqCtx, probe.Name); err != nil {
		return fmt.Errorf("deleting the R%d stream: %w", running, err)
	}
	return nil
}

// streamLeader returns the server leading stream, or nil.
func (c *natsCluster) streamLeader(stream string) *natsServer {
	for _, s := range c.servers {
		if srv := s.running(); srv != nil && srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return s
		}
	}
	return nil
}

func (c *natsCluster) stop() {
	for _, s := range c.servers {
		s.kill()
	}
	_ = os.RemoveAll(c.dir)
}
