package payload

import (
	"encoding/json"
	"errors"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// Content types of the rendered bodies.
const (
	ContentTypeDTR         = "application/json"
	ContentTypeCloudEvents = "application/cloudevents+json"
)

// CloudEventsTypePrefix prefixes the event type in the CloudEvents type
// attribute: io.kubehook.TAG_PUSH.
const CloudEventsTypePrefix = "io.kubehook."

// Render returns the request body of ev in format, and its content type.
//
// DTR (also the empty format) is the JSON of ev, the DTR wrapper
// {"type", "createdAt", "contents"}, sent as application/json.
//
// CloudEvents is a CloudEvents 1.0 event in structured JSON mode, sent as
// application/cloudevents+json: id deliveryID (stable across retries of
// one delivery), source, type "io.kubehook.<type>", time ev.CreatedAt,
// subject "<namespace>/<repository>" (or "<namespace>") when the contents
// have them, and data the contents as application/json.
func Render(format kubehookv1.PayloadFormat, ev Event, deliveryID, source string) (body []byte, contentType string, err error) {
	if len(ev.Contents) == 0 {
		return nil, "", errors.New("render payload: event has no contents")
	}
	switch format {
	case kubehookv1.PayloadFormatDTR, "":
		body, err = ev.MarshalJSON()
		if err != nil {
			return nil, "", fmt.Errorf("render DTR payload: %w", err)
		}
		return body, ContentTypeDTR, nil
	case kubehookv1.PayloadFormatCloudEvents:
		body, err = renderCloudEvent(ev, deliveryID, source)
		if err != nil {
			return nil, "", fmt.Errorf("render CloudEvents payload: %w", err)
		}
		return body, ContentTypeCloudEvents, nil
	}
	return nil, "", fmt.Errorf("render payload: unknown payload format %q", format)
}

func renderCloudEvent(ev Event, deliveryID, source string) ([]byte, error) {
	ce := cloudevents.NewEvent()
	ce.SetID(deliveryID)
	ce.SetType(CloudEventsTypePrefix + string(ev.Type))
	ce.SetSource(source)
	ce.SetTime(ev.CreatedAt)
	if subject := subjectOf(ev.Contents); subject != "" {
		ce.SetSubject(subject)
	}
	// A json.RawMessage (not a []byte, which the SDK would base64) is
	// written as the JSON value of "data".
	if err := ce.SetData(cloudevents.ApplicationJSON, ev.Contents); err != nil {
		return nil, err
	}
	if err := ce.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(ce)
}

// subjectOf returns "namespace/repository" of contents, "namespace" when it
// has no repository, "" when it has neither or is not an object.
func subjectOf(contents json.RawMessage) string {
	var c struct {
		Namespace  any `json:"namespace"`
		Repository any `json:"repository"`
	}
	if json.Unmarshal(contents, &c) != nil {
		return ""
	}
	ns, _ := c.Namespace.(string)
	repo, _ := c.Repository.(string)
	switch {
	case ns == "":
		return ""
	case repo == "":
		return ns
	}
	return ns + "/" + repo
}
