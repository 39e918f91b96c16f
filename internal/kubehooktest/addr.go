package kubehooktest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
)

// handedOut holds the ports FreePort has returned: one is free when
// returned, but a kubehook child binds some of its ports only once it has
// loaded its subscriptions, and the kernel may offer such a port again
// meanwhile, to the next child.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a loopback port free at the time of the call, and never
// one it returned before in this process.
func FreePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		port, err := listenPort()
		if err != nil {
			return 0, err
		}
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port, nil
		}
	}
}

// FreeAddr returns a loopback address ("127.0.0.1:port") with a port from
// FreePort; it fails the test if there is none.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func listenPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}
