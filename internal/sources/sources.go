package sources

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// InputError is outside input kubehook cannot accept. The server answers
// 400 with it; Field names the offending field (a JSON path such as
// "events[2].target.repository"), empty when the body as a whole is bad.
type InputError struct {
	Field   string
	Message string
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// badInput returns an *InputError.
func badInput(field, format string, args ...any) error {
	return &InputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// MapOptions carry what mapping needs beyond the body.
type MapOptions struct {
	// RegistryHost is the host (and port) in imageName, e.g.
	// "registry.example.com" in "registry.example.com/ns/repo:tag".
	RegistryHost string
	// Resolutions, when set, turns a client's HEAD of a tag followed by its
	// GET of the digest into a TAG_PULL (see TagResolutions).
	Resolutions *TagResolutions
}

// Platform is the os and architecture of an image.
type Platform struct {
	OS           string
	Architecture string
}

// Inspector finds the platform of a manifest from its image config. A nil
// Inspector, or an error, leaves os and architecture empty: the event is
// delivered anyway.
type Inspector interface {
	Platform(ctx context.Context, repository, digest string) (Platform, error)
}

// eventID is an engine.Event ID: the source's name and a SHA-256 of the
// fields that identify the source event. Fields are length-prefixed, so no
// two different field lists hash the same bytes.
func eventID(source string, fields ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, f := range fields {
		h.Write(binary.AppendUvarint(n[:0], uint64(len(f))))
		h.Write([]byte(f))
	}
	return source + "/" + hex.EncodeToString(h.Sum(nil))
}
