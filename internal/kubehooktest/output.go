package kubehooktest

import (
	"bytes"
	"sync"
)

// Output is what a child process writes (stdout and stderr), written by
// exec's copier while the test reads it.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Len is how much has been written.
func (o *Output) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Len()
}

// Since returns what was written from offset on.
func (o *Output) Since(offset int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.buf.Bytes()[min(offset, o.buf.Len()):])
}

// Tail returns the last n bytes written.
func (o *Output) Tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.buf.Bytes()
	if len(s) <= n {
		return string(s)
	}
	return "...\n" + string(s[len(s)-n:])
}
