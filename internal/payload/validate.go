package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// Validate checks that contents is a JSON object fit to be the contents of an
// event of type t: every field this package models has the documented JSON
// type (string, integer, boolean, object, RFC 3339 timestamp string), the
// fields the type cannot do without are present and non-empty, and it
// decodes into ContentsFor(t). Fields it does not model are allowed, as the
// DTR document clips its examples with "...".
//
// Required fields:
//   - every repository-scoped and namespace-scoped type: namespace, repository
//   - TAG_*: tag; MANIFEST_*: digest
//   - SCAN_COMPLETED: scanSummary; SCAN_FAILED: error
//   - PROMOTION: targetRepository; PUSH_MIRRORING, POLL_MIRRORING: remoteRepository
//   - CHART_*: chartName, chartVersion
//   - REPO_EVENT: event, one of REPO_CREATED, REPO_UPDATED, REPO_DELETED;
//     REPO_CREATED, REPO_UPDATED, REPO_DELETED: event, equal to the type
//   - SCANNER_UPDATE_COMPLETED: scanner_version, success
//
// A null value counts as absent. Errors name the field by its JSON path,
// such as "contents.tag: required"; several are joined with errors.Join.
func Validate(t kubehookv1.EventType, contents json.RawMessage) error {
	s, ok := specs[t]
	if !ok {
		return fmt.Errorf("type: unknown event type %q", t)
	}
	if len(bytes.TrimSpace(contents)) == 0 {
		return errors.New("contents: required")
	}
	m, ok := object(contents)
	if !ok {
		return errors.New("contents: must be a JSON object")
	}
	var errs []error
	checkObject("contents", m, s.fields, s.required, &errs)
	if len(s.events) > 0 {
		checkEvent(t, m, s.events, &errs)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// The checks above cover every modelled field; decoding guarantees what
	// they might miss (such as a differently cased duplicate key, which
	// encoding/json matches case-insensitively).
	if err := json.Unmarshal(contents, ContentsFor(t)); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("contents.%s: cannot hold a JSON %s", te.Field, te.Value)
		}
		return fmt.Errorf("contents: %w", err)
	}
	return nil
}

// kind is the JSON type of a modelled field.
type kind int

const (
	kindString     kind = iota
	kindTime            // RFC 3339 string
	kindInt             // integer number
	kindScanStatus      // integer 0..6
	kindBool            // true or false
	kindObject          // any JSON object (json.RawMessage)
	kindStruct          // object with modelled fields
	kindMap             // object whose every value is an object with modelled fields
)

type field struct {
	name   string
	kind   kind
	fields []field // of kindStruct and kindMap values
}

type spec struct {
	fields   []field
	required []string
	events   []string // allowed values of contents.event
}

// specs holds the validation spec of every event type, derived from the
// contents structs so that the two cannot drift apart.
var specs = buildSpecs()

func buildSpecs() map[kubehookv1.EventType]spec {
	out := make(map[kubehookv1.EventType]spec, len(kubehookv1.EventTypes))
	for _, t := range kubehookv1.EventTypes {
		s := spec{fields: fieldsOf(reflect.TypeOf(ContentsFor(t)).Elem())}
		if t.Scope() != kubehookv1.GlobalScope {
			s.required = append(s.required, "namespace", "repository")
		}
		switch t {
		case kubehookv1.TagPush, kubehookv1.TagPull, kubehookv1.TagDelete:
			s.required = append(s.required, "tag")
		case kubehookv1.ManifestPush, kubehookv1.ManifestPull, kubehookv1.ManifestDelete:
			s.required = append(s.required, "digest")
		case kubehookv1.ScanCompleted:
			s.required = append(s.required, "scanSummary")
		case kubehookv1.ScanFailed:
			s.required = append(s.required, "error")
		case kubehookv1.Promotion:
			s.required = append(s.required, "targetRepository")
		case kubehookv1.PushMirroring, kubehookv1.PollMirroring:
			s.required = append(s.required, "remoteRepository")
		case kubehookv1.ChartPush, kubehookv1.ChartPull, kubehookv1.ChartDelete:
			s.required = append(s.required, "chartName", "chartVersion")
		case kubehookv1.RepoEvent:
			s.required = append(s.required, "event")
			s.events = []string{RepoEventCreated, RepoEventUpdated, RepoEventDeleted}
		case kubehookv1.RepoCreated, kubehookv1.RepoUpdated, kubehookv1.RepoDeleted:
			s.required = append(s.required, "event")
			s.events = []string{string(t)}
		case kubehookv1.ScannerUpdateCompleted:
			s.required = append(s.required, "scanner_version", "success")
		}
		out[t] = s
	}
	return out
}

var (
	timeType       = reflect.TypeFor[time.Time]()
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	scanStatusType = reflect.TypeFor[ScanStatus]()
)

// fieldsOf lists the JSON fields of a contents struct. It panics on a field
// type it does not know, which the tests of every event type would catch.
func fieldsOf(st reflect.Type) []field {
	var fs []field
	for i := range st.NumField() {
		sf := st.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if !sf.IsExported() || name == "-" || name == "" {
			continue
		}
		f := field{name: name}
		ft := sf.Type
		switch {
		case ft == timeType:
			f.kind = kindTime
		case ft == rawMessageType:
			f.kind = kindObject
		case ft == scanStatusType:
			f.kind = kindScanStatus
		case ft.Kind() == reflect.String:
			f.kind = kindString
		case ft.Kind() == reflect.Int:
			f.kind = kindInt
		case ft.Kind() == reflect.Bool:
			f.kind = kindBool
		case ft.Kind() == reflect.Struct:
			f.kind, f.fields = kindStruct, fieldsOf(ft)
		case ft.Kind() == reflect.Map && ft.Key().Kind() == reflect.String && ft.Elem().Kind() == reflect.Struct:
			f.kind, f.fields = kindMap, fieldsOf(ft.Elem())
		default:
			panic(fmt.Sprintf("payload: field %s.%s has unsupported type %s", st.Name(), sf.Name, ft))
		}
		fs = append(fs, f)
	}
	return fs
}

// object decodes raw as a JSON object; ok is false when it is anything else.
func object(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false
	}
	return m, true
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func checkObject(path string, m map[string]json.RawMessage, fields []field, required []string, errs *[]error) {
	for _, f := range fields {
		p := path + "." + f.name
		v, present := m[f.name]
		if !present || isNull(v) {
			if slices.Contains(required, f.name) {
				*errs = append(*errs, fmt.Errorf("%s: required", p))
			}
			continue
		}
		switch f.kind {
		case kindString:
			var s string
			if json.Unmarshal(v, &s) != nil {
				*errs = append(*errs, fmt.Errorf("%s: must be a string", p))
			} else if s == "" && slices.Contains(required, f.name) {
				*errs = append(*errs, fmt.Errorf("%s: required", p))
			}
		case kindTime:
			var s string
			var ts time.Time
			if json.Unmarshal(v, &s) != nil || json.Unmarshal(v, &ts) != nil {
				*errs = append(*errs, fmt.Errorf("%s: must be an RFC 3339 timestamp string", p))
			}
		case kindInt:
			var n int
			if json.Unmarshal(v, &n) != nil {
				*errs = append(*errs, fmt.Errorf("%s: must be an integer", p))
			}
		case kindScanStatus:
			var n int
			if json.Unmarshal(v, &n) != nil || n < int(ScanStatusFailed) || n > int(ScanStatusCompleted) {
				*errs = append(*errs, fmt.Errorf("%s: must be a scan status, an integer from 0 to 6", p))
			}
		case kindBool:
			var b bool
			if json.Unmarshal(v, &b) != nil {
				*errs = append(*errs, fmt.Errorf("%s: must be true or false", p))
			}
		case kindObject:
			if _, ok := object(v); !ok {
				*errs = append(*errs, fmt.Errorf("%s: must be a JSON object", p))
			}
		case kindStruct:
			sub, ok := object(v)
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: must be a JSON object", p))
				continue
			}
			checkObject(p, sub, f.fields, nil, errs)
		case kindMap:
			sub, ok := object(v)
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: must be a JSON object", p))
				continue
			}
			keys := make([]string, 0, len(sub))
			for k := range sub {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				ep := p + "." + k
				if isNull(sub[k]) {
					continue
				}
				entry, ok := object(sub[k])
				if !ok {
					*errs = append(*errs, fmt.Errorf("%s: must be a JSON object", ep))
					continue
				}
				checkObject(ep, entry, f.fields, nil, errs)
			}
		}
	}
}

// checkEvent checks contents.event of the repository event types. A wrong
// JSON type or a missing value has already been reported by checkObject.
func checkEvent(t kubehookv1.EventType, m map[string]json.RawMessage, allowed []string, errs *[]error) {
	var ev string
	if v, ok := m["event"]; !ok || json.Unmarshal(v, &ev) != nil || ev == "" {
		return
	}
	if slices.Contains(allowed, ev) {
		return
	}
	if len(allowed) == 1 {
		*errs = append(*errs, fmt.Errorf("contents.event: must be %s for type %s, not %q", allowed[0], t, ev))
		return
	}
	*errs = append(*errs, fmt.Errorf("contents.event: must be one of %s, not %q", strings.Join(allowed, ", "), ev))
}
