package sources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/intake"
	"github.com/kubehook/kubehook/internal/payload"
)

// IdempotencyKeyHeader is the request header by which a producer of native
// events names its request, so that the request sent again (after a
// timeout, a 503) has the delivery IDs it had the first time.
const IdempotencyKeyHeader = "Idempotency-Key"

// MaxIdempotencyKeyLength bounds an Idempotency-Key, in bytes.
const MaxIdempotencyKeyLength = 255

// Native maps native events: the DTR wrapper {"type", "createdAt",
// "contents"} that kubehook delivers, posted by producers such as scanners,
// promotion and mirroring jobs, and repository management. body is one
// wrapper object or an array of them (at least one).
//
//   - type is required, one of the DTR event types (api/v1alpha1 EventTypes).
//   - contents is required and validated for its type with payload.Validate
//     (required fields present, every modelled field of its JSON type).
//     Fields payload does not model pass through unchanged. namespace must
//     be one registry path component and repository a registry path
//     (lowercase letters, digits and separators), as on the registry.
//   - createdAt is optional, an RFC 3339 timestamp; it defaults to now.
//   - No other top-level field is accepted (keys match exactly).
//
// The event's repository, which subscriptions' keys match, is
// "namespace/repository" of contents; SCANNER_UPDATE_COMPLETED has none and
// reaches only global subscriptions (no key). Errors are *InputError; in an
// array their fields start with the index, as in "[2].contents.tag". One bad
// element fails the whole request.
//
// The events' IDs give a resent request the delivery IDs it had. With
// idempotencyKey (the Idempotency-Key header; "" for none), an event's ID
// is the key and its index in the request: a request sent again with the
// same key is the same events, whatever its body. The key must be 1 to
// MaxIdempotencyKeyLength printable ASCII characters (else an *InputError
// for field "Idempotency-Key", and no events). Without a key the ID is a
// hash of the event as delivered (type, createdAt, contents with its keys
// sorted): the same body sent again is the same events when it carries
// createdAt, and new ones when it does not, since createdAt is then the
// time of receipt.
func Native(body []byte, now time.Time, idempotencyKey string) ([]intake.Event, error) {
	if idempotencyKey != "" {
		if err := checkIdempotencyKey(idempotencyKey); err != nil {
			return nil, err
		}
	}
	evs, err := nativeEvents(body, now)
	if err != nil {
		return nil, err
	}
	for i := range evs {
		if idempotencyKey != "" {
			evs[i].ID = eventID(SourceEvents, "key", idempotencyKey, strconv.Itoa(i))
		} else {
			evs[i].ID = nativeContentID(&evs[i].Payload)
		}
	}
	return evs, nil
}

// IdempotencyKey returns the Idempotency-Key of a request's header, "" when
// it has none. A header sent more than once or empty is an *InputError;
// Native checks the key itself.
func IdempotencyKey(h http.Header) (string, error) {
	switch vals := h.Values(IdempotencyKeyHeader); {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", badInput(IdempotencyKeyHeader, "the header is sent %d times; send one key per request", len(vals))
	case vals[0] == "":
		return "", badInput(IdempotencyKeyHeader, "the header is empty; send a key unique to the request, such as a UUID, or no header")
	default:
		return vals[0], nil
	}
}

// checkIdempotencyKey checks that key is fit to identify a request: short,
// and nothing that would not survive a header or a log line.
func checkIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKeyLength {
		return badInput(IdempotencyKeyHeader, "the key is %d bytes long; it may have at most %d printable ASCII characters", len(key), MaxIdempotencyKeyLength)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return badInput(IdempotencyKeyHeader, "the key has byte %#02x at %d; it may have printable ASCII characters only (space to ~)", c, i)
		}
	}
	return nil
}

// nativeContentID is the ID of a native event sent without a key: a hash
// of the event as kubehook delivers it, contents canonical (keys sorted,
// numbers as written), so the same event posted again has the same ID.
func nativeContentID(ev *payload.Event) string {
	contents := []byte(ev.Contents)
	dec := json.NewDecoder(bytes.NewReader(contents))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) == nil {
		// Marshalling what was decoded sorts the keys of every object.
		if c, err := json.Marshal(v); err == nil {
			contents = c
		}
	}
	return eventID(SourceEvents, "event", string(ev.Type), ev.CreatedAt.UTC().Format(time.RFC3339Nano), string(contents))
}

// nativeEvents maps body, as Native describes, without IDs.
func nativeEvents(body []byte, now time.Time) ([]intake.Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, badInput("", "empty body: want a JSON event object or an array of them")
	}
	if !json.Valid(body) {
		return nil, syntaxError(body)
	}
	switch body[0] {
	case '{':
		ev, err := nativeEvent("", body, now)
		if err != nil {
			return nil, err
		}
		return []intake.Event{ev}, nil
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(body, &elems); err != nil {
			return nil, jsonInputError("", err)
		}
		if len(elems) == 0 {
			return nil, badInput("", "empty array: want at least one event")
		}
		out := make([]intake.Event, 0, len(elems))
		for i, raw := range elems {
			ev, err := nativeEvent(fmt.Sprintf("[%d]", i), raw, now)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		return out, nil
	}
	return nil, badInput("", "want a JSON event object or an array of them")
}

// nativeFields are the keys of the DTR wrapper.
var nativeFields = []string{"type", "createdAt", "contents"}

// nativeEvent maps one wrapper; prefix is "" or "[i]".
func nativeEvent(prefix string, raw json.RawMessage, now time.Time) (intake.Event, error) {
	field := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return intake.Event{}, badInput(prefix, "must be a JSON object {\"type\", \"createdAt\", \"contents\"}")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return intake.Event{}, jsonInputError(prefix, err)
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(nativeFields, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return intake.Event{}, badInput(field(unknown[0]), "unknown field (a native event has only type, createdAt and contents)")
	}

	var typ string
	if v, ok := m["type"]; !ok || isJSONNull(v) {
		return intake.Event{}, badInput(field("type"), "required")
	} else if json.Unmarshal(v, &typ) != nil {
		return intake.Event{}, badInput(field("type"), "must be a string")
	}
	if typ == "" {
		return intake.Event{}, badInput(field("type"), "required")
	}
	t := kubehookv1.EventType(typ)
	if !slices.Contains(kubehookv1.EventTypes, t) {
		return intake.Event{}, badInput(field("type"), "unknown event type %q", typ)
	}

	createdAt := now.UTC()
	if v, ok := m["createdAt"]; ok && !isJSONNull(v) {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return intake.Event{}, badInput(field("createdAt"), "must be an RFC 3339 timestamp string")
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return intake.Event{}, badInput(field("createdAt"), "must be an RFC 3339 timestamp, such as 2019-05-22T01:55:20.471Z: %q", s)
		}
		if !timeInRange(ts) {
			return intake.Event{}, badInput(field("createdAt"), "out of range: %q is not between the years 1 and 9999 in UTC", s)
		}
		createdAt = ts.UTC()
	}

	contents := m["contents"]
	if err := payload.Validate(t, contents); err != nil {
		return intake.Event{}, validationError(prefix, err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, contents); err != nil {
		return intake.Event{}, badInput(field("contents"), "%v", err)
	}

	var repo string
	if t.Scope() != kubehookv1.GlobalScope {
		var c struct {
			Namespace  string `json:"namespace"`
			Repository string `json:"repository"`
		}
		// Validate has checked both are strings.
		_ = json.Unmarshal(contents, &c)
		if !validComponent(c.Namespace) {
			return intake.Event{}, badInput(field("contents.namespace"),
				"must be a registry namespace, one path component of lowercase letters, digits and separators (. _ __ -): %q", c.Namespace)
		}
		repo = c.Namespace
		if c.Repository != "" {
			if !validRepository(c.Repository) || len(c.Namespace)+1+len(c.Repository) > maxRepositoryLength {
				return intake.Event{}, badInput(field("contents.repository"),
					"must be a registry repository name, path components of lowercase letters, digits and separators (. _ __ -): %q", c.Repository)
			}
			repo += "/" + c.Repository
		}
	}
	return intake.Event{
		Repository: repo,
		Payload:    payload.Event{Type: t, CreatedAt: createdAt, Contents: compact.Bytes()},
	}, nil
}

// validationError turns the errors of payload.Validate ("contents.tag:
// required", joined when several) into an *InputError naming the first
// field, with prefix ("[2]") before every path. The others follow in the
// message.
func validationError(prefix string, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	at := func(e error) (string, string) {
		path, msg, ok := strings.Cut(e.Error(), ": ")
		if !ok {
			return prefix, e.Error()
		}
		if prefix != "" {
			path = prefix + "." + path
		}
		return path, msg
	}
	field, msg := at(errs[0])
	for _, e := range errs[1:] {
		p, m := at(e)
		msg += "; " + p + ": " + m
	}
	return &InputError{Field: field, Message: msg}
}

// Helpers shared by the parsers of this package.

// maxRepositoryLength is the longest repository path the Distribution
// registry accepts.
const maxRepositoryLength = 255

var (
	// componentRe is one path component of a repository name, as the
	// Distribution registry's reference grammar defines it.
	componentRe  = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	repositoryRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagRe        = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	digestRe     = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)
)

func validComponent(s string) bool {
	return len(s) <= maxRepositoryLength && componentRe.MatchString(s)
}

func validRepository(s string) bool {
	return len(s) <= maxRepositoryLength && repositoryRe.MatchString(s)
}

func validTag(s string) bool { return tagRe.MatchString(s) }

// validDigest reports whether s is a digest "algorithm:encoded"; sha256 and
// sha512 digests must have their length of lowercase hex.
func validDigest(s string) bool {
	if len(s) > 256 || !digestRe.MatchString(s) {
		return false
	}
	alg, enc, _ := strings.Cut(s, ":")
	hexLen := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[alg]
	if hexLen == 0 {
		return true
	}
	if len(enc) != hexLen {
		return false
	}
	for _, c := range enc {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// timeInRange reports whether t, in UTC, is a time a JSON timestamp can
// show: years 1 to 9999.
func timeInRange(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}

// imageName is the fully qualified image name of DTR's imageName:
// host/repository:tag when sep is ':', host/repository@digest when sep is
// '@'. Without a host it is the repository-relative name.
func imageName(host, repository string, sep byte, ref string) string {
	name := repository + string(sep) + ref
	if host == "" {
		return name
	}
	return host + "/" + name
}

// newEvent wraps contents (a payload contents struct) for the engine.
func newEvent(t kubehookv1.EventType, repository string, at time.Time, contents any) (intake.Event, error) {
	ev, err := payload.NewEvent(t, at, contents)
	if err != nil {
		// The contents structs of package payload always marshal.
		return intake.Event{}, fmt.Errorf("sources: %w", err)
	}
	return intake.Event{Repository: repository, Payload: ev}, nil
}

// syntaxError describes why body is not JSON.
func syntaxError(body []byte) error {
	var v any
	err := json.Unmarshal(body, &v)
	if err == nil {
		return badInput("", "malformed JSON")
	}
	return jsonInputError("", err)
}

// jsonInputError turns a decoding error into an *InputError. A type error
// names its field under prefix (a JSON path such as "events[1]"); a syntax
// error is about the whole body.
func jsonInputError(prefix string, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return badInput("", "malformed JSON at byte %d: %v", se.Offset, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := prefix
		if te.Field != "" {
			if field != "" {
				field += "."
			}
			field += te.Field
		}
		return badInput(field, "must be a JSON %s, not %s", jsonKind(te.Type.String()), te.Value)
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return badInput(prefix, "invalid timestamp, want RFC 3339: %v", err)
	}
	return badInput(prefix, "%v", err)
}

// jsonKind names the JSON type that decodes into the Go type named goType.
func jsonKind(goType string) string {
	switch {
	case goType == "string" || strings.HasSuffix(goType, "Digest"):
		return "string"
	case goType == "bool":
		return "boolean"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint") || strings.HasPrefix(goType, "float"):
		return "number"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case goType == "time.Time":
		return "RFC 3339 timestamp string"
	}
	return "object"
}

func isJSONNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }
