package delivery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eventsPath is the sources server's route for native events.
const eventsPath = "/v1/events"

// nativeEvent is the DTR wrapper a producer posts to /v1/events.
type nativeEvent struct {
	Type      string `json:"type"`
	CreatedAt string `json:"createdAt,omitempty"`
	Contents  any    `json:"contents"`
}

// accepted is the body of the sources server's 202 answer: the events of
// the request and the deliveries durably queued for them.
type accepted struct {
	Accepted   int `json:"accepted"`
	Deliveries int `json:"deliveries"`
}

// numberedTag is the tag of event n; the receiver's default event key.
func numberedTag(n int) string { return "e-" + strconv.Itoa(n) }

// tagPushEvent is a TAG_PUSH of tag numberedTag(n) to repo ("ns/name").
func tagPushEvent(repo string, n int) nativeEvent {
	ns, name, _ := strings.Cut(repo, "/")
	tag := numberedTag(n)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return nativeEvent{
		Type:      "TAG_PUSH",
		CreatedAt: now,
		Contents: map[string]any{
			"namespace":    ns,
			"repository":   name,
			"tag":          tag,
			"digest":       fmt.Sprintf("sha256:%064x", n),
			"imageName":    "registry.example.com/" + repo + ":" + tag,
			"os":           "linux",
			"architecture": "amd64",
			"author":       "ci",
			"pushedAt":     now,
		},
	}
}

// postEvents posts events in one request to /v1/events with the process's
// token. Anything but 202 is an error: the sources server accepts a request
// whole or not at all.
func (p *kubehook) postEvents(events ...nativeEvent) (accepted, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return accepted{}, err
	}
	return p.post(eventsPath, "application/json", p.cfg.token, body)
}

// post sends body to a sources path with the Bearer token and returns the
// 202 answer; any other answer is an error.
func (p *kubehook) post(path, contentType, token string, body []byte) (accepted, error) {
	req, err := http.NewRequest(http.MethodPost, p.eventsURL(path), bytes.NewReader(body))
	if err != nil {
		return accepted{}, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return accepted{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return accepted{}, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return accepted{}, fmt.Errorf("POST %s: %s: %s", path, resp.Status, answer)
	}
	var a accepted
	if err := json.Unmarshal(answer, &a); err != nil {
		return accepted{}, fmt.Errorf("POST %s: 202 with %q: %w", path, answer, err)
	}
	return a, nil
}

// postInBatches posts events, size to a request, and returns the totals
// of the answers. It fails the test at the first request not accepted.
func (p *kubehook) postInBatches(t *testing.T, events []nativeEvent, size int) accepted {
	t.Helper()
	var total accepted
	for i := 0; i < len(events); i += size {
		a, err := p.postEvents(events[i:min(i+size, len(events))]...)
		if err != nil {
			t.Fatalf("posting events %d..%d: %v", i, min(i+size, len(events))-1, err)
		}
		total.Accepted += a.Accepted
		total.Deliveries += a.Deliveries
	}
	return total
}
