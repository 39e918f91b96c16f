package kubehooktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// EventsPath is the sources server's route for native events.
const EventsPath = "/v1/events"

// NativeEvent is the DTR wrapper a producer posts to /v1/events.
type NativeEvent struct {
	Type      string `json:"type"`
	CreatedAt string `json:"createdAt,omitempty"`
	Contents  any    `json:"contents"`
}

// Accepted is the body of the sources server's 202 answer: the events of
// the request and the deliveries durably queued for them.
type Accepted struct {
	Accepted   int `json:"accepted"`
	Deliveries int `json:"deliveries"`
}

// NumberedTag is the tag of event n, by which a Receiver knows it by
// default (TagKey).
func NumberedTag(n int) string { return "e-" + strconv.Itoa(n) }

// TagPushEvent is a TAG_PUSH of tag NumberedTag(n) to repo ("ns/name").
func TagPushEvent(repo string, n int) NativeEvent {
	ns, name, _ := strings.Cut(repo, "/")
	tag := NumberedTag(n)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return NativeEvent{
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

// PostEvents posts events in one request to /v1/events with the process's
// token. Anything but 202 is an error: the sources server accepts a request
// whole or not at all.
func (p *Kubehook) PostEvents(events ...NativeEvent) (Accepted, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return Accepted{}, err
	}
	return p.Post(EventsPath, "application/json", p.Token, body)
}

// Post sends body to the sources server's path with the Bearer token and
// returns the 202 answer; any other answer is an error.
func (p *Kubehook) Post(path, contentType, token string, body []byte) (Accepted, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+p.EventsAddr+path, bytes.NewReader(body))
	if err != nil {
		return Accepted{}, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Accepted{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Accepted{}, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return Accepted{}, fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(answer))
	}
	var a Accepted
	if err := json.Unmarshal(answer, &a); err != nil {
		return Accepted{}, fmt.Errorf("POST %s: 202 with %q: %w", path, answer, err)
	}
	return a, nil
}
