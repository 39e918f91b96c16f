// Package payload is the model of the webhook payloads kubehook delivers: the
// Docker Trusted Registry (DTR) wrapper {"type", "createdAt", "contents"},
// the contents of every event type with the JSON field names of the DTR
// webhook documentation, their validation, the fixed sample payloads sent by
// test deliveries, and the rendering of a payload as a DTR or CloudEvents
// request body.
package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// Event is the wrapper DTR posts to a webhook endpoint:
//
//	{"type": "TAG_PUSH", "createdAt": "2012-04-23T18:25:43.511Z", "contents": {...}}
//
// Contents is kept as raw JSON so that fields kubehook does not model (the
// "..." of the DTR document) reach the endpoint unchanged.
type Event struct {
	// Type is the event type.
	Type kubehookv1.EventType `json:"type"`
	// CreatedAt is when the event occurred. It is marshalled as an
	// RFC 3339 timestamp with nanoseconds, in UTC.
	CreatedAt time.Time `json:"createdAt"`
	// Contents is the event itself; its shape depends on Type (see
	// ContentsFor).
	Contents json.RawMessage `json:"contents"`
}

// MarshalJSON writes the wrapper with its fields in the DTR order (type,
// createdAt, contents) and createdAt in UTC, contents compacted (and
// checked). It is on every event's path, so it appends rather than
// reflects; call it directly: json.Marshal would check and compact its
// output once more.
func (e Event) MarshalJSON() ([]byte, error) {
	contents := e.Contents
	if len(contents) == 0 {
		contents = json.RawMessage("null")
	}
	b := make([]byte, 0, len(contents)+96)
	b = append(b, `{"type":`...)
	if plainType(e.Type) {
		b = append(append(append(b, '"'), e.Type...), '"')
	} else {
		t, err := json.Marshal(string(e.Type))
		if err != nil {
			return nil, err
		}
		b = append(b, t...)
	}
	b = append(b, `,"createdAt":"`...)
	b = e.CreatedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","contents":`...)
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, contents); err != nil {
		return nil, fmt.Errorf("contents of %s event: %w", e.Type, err)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// plainType reports whether t needs no JSON escaping (every known type).
func plainType(t kubehookv1.EventType) bool {
	for i := 0; i < len(t); i++ {
		if c := t[i]; (c < 'A' || c > 'Z') && c != '_' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// NewEvent marshals contents (one of the contents structs of this package,
// or any JSON-marshallable value) and wraps it. createdAt is stored in UTC.
func NewEvent(t kubehookv1.EventType, createdAt time.Time, contents any) (Event, error) {
	raw, err := json.Marshal(contents)
	if err != nil {
		return Event{}, fmt.Errorf("marshal %s contents: %w", t, err)
	}
	return Event{Type: t, CreatedAt: createdAt.UTC(), Contents: raw}, nil
}
