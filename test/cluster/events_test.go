package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// eventsPath is the sources server's route for native events.
const eventsPath = "/v1/events"

// nativeEvent is the DTR wrapper a producer posts to /v1/events.
type nativeEvent struct {
	Type      string `json:"type"`
	CreatedAt string `json:"createdAt,omitempty"`
	Contents  any    `json:"contents"`
}

// accepted is the body of the sources server's 202 answer.
type accepted struct {
	Accepted   int `json:"accepted"`
	Deliveries int `json:"deliveries"`
}

// numberedTag is the tag of event n, by which the receiver knows it.
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
func (p *kubehook) postEvents(events []nativeEvent) (accepted, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return accepted{}, err
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+p.eventsAddr+eventsPath, bytes.NewReader(body))
	if err != nil {
		return accepted{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.token)
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
		return accepted{}, fmt.Errorf("POST %s: %s: %s", eventsPath, resp.Status, bytes.TrimSpace(answer))
	}
	var a accepted
	if err := json.Unmarshal(answer, &a); err != nil {
		return accepted{}, fmt.Errorf("POST %s: 202 with %q: %w", eventsPath, answer, err)
	}
	return a, nil
}

// metric reads kubehook's /metrics and returns the sum of the samples of
// the counter or gauge name whose labels include labels. A family with no
// sample yet reads 0.
func (p *kubehook) metric(name string, labels map[string]string) (float64, error) {
	resp, err := http.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("parsing /metrics: %w", err)
	}
	var sum float64
	for _, m := range families[name].GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		default:
			return 0, fmt.Errorf("%s is not a counter or gauge", name)
		}
	}
	return sum, nil
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}

// successes is how many deliveries p made: attempts answered 2xx, over
// every event type.
func (p *kubehook) successes() (int, error) {
	n, err := p.metric("kubehook_deliveries_total", map[string]string{"result": "success"})
	return int(n), err
}

// leaderElectionID is the Lease kubehook's replicas elect a leader with.
const leaderElectionID = "kubehook.kubehook.io"

// leads reports whether p holds the leader-election Lease, as
// controller-runtime's leader_election_master_status says.
func (p *kubehook) leads() (bool, error) {
	n, err := p.metric("leader_election_master_status", map[string]string{"name": leaderElectionID})
	return n == 1, err
}
