package payload

import (
	"encoding/json"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// The contents structs below carry the JSON field names of the DTR webhook
// documentation (reference/dtr-webhooks-api.md, "Content structure"), in the
// documented order. Timestamps are time.Time, which encodes as the
// "JSON-encoded timestamp" of the document: an RFC 3339 string with
// nanoseconds. Producers should set them in UTC.
//
// The document details TAG_PUSH, TAG_DELETE, MANIFEST_PUSH, MANIFEST_DELETE,
// SCAN_COMPLETED, SCAN_FAILED, the repository event (REPO_EVENT, and so
// REPO_CREATED, REPO_UPDATED, REPO_DELETED) and SCANNER_UPDATE_COMPLETED.
// For the other types the shape is kubehook's choice, modelled on the
// nearest documented one; each struct's comment says how.
//
// Each struct spells out all its fields, though many share namespace,
// repository, tag, digest and the image's: a struct reads as its type's
// field list in the document, and Validate walks a struct's own fields,
// where an embedded struct of shared ones would be one field without a
// JSON name, and go unchecked.

// TagPush is the contents of TAG_PUSH (documented).
type TagPush struct {
	Namespace    string    `json:"namespace"`
	Repository   string    `json:"repository"`
	Tag          string    `json:"tag"`
	Digest       string    `json:"digest"`
	ImageName    string    `json:"imageName"`
	OS           string    `json:"os"`
	Architecture string    `json:"architecture"`
	Author       string    `json:"author"`
	PushedAt     time.Time `json:"pushedAt"`
}

// TagPull is the contents of TAG_PULL. Not detailed by the DTR document:
// the TAG_PUSH shape with pulledAt in place of pushedAt; author is the user
// who pulled.
type TagPull struct {
	Namespace    string    `json:"namespace"`
	Repository   string    `json:"repository"`
	Tag          string    `json:"tag"`
	Digest       string    `json:"digest"`
	ImageName    string    `json:"imageName"`
	OS           string    `json:"os"`
	Architecture string    `json:"architecture"`
	Author       string    `json:"author"`
	PulledAt     time.Time `json:"pulledAt"`
}

// TagDelete is the contents of TAG_DELETE (documented).
type TagDelete struct {
	Namespace    string    `json:"namespace"`
	Repository   string    `json:"repository"`
	Tag          string    `json:"tag"`
	Digest       string    `json:"digest"`
	ImageName    string    `json:"imageName"`
	OS           string    `json:"os"`
	Architecture string    `json:"architecture"`
	Author       string    `json:"author"`
	DeletedAt    time.Time `json:"deletedAt"`
}

// ManifestPush is the contents of MANIFEST_PUSH (documented; the document
// lists no timestamp for it).
type ManifestPush struct {
	Namespace    string `json:"namespace"`
	Repository   string `json:"repository"`
	Digest       string `json:"digest"`
	ImageName    string `json:"imageName"`
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Author       string `json:"author"`
}

// ManifestPull is the contents of MANIFEST_PULL. Not detailed by the DTR
// document: the MANIFEST_PUSH shape plus pulledAt (as MANIFEST_DELETE adds
// deletedAt); author is the user who pulled.
type ManifestPull struct {
	Namespace    string    `json:"namespace"`
	Repository   string    `json:"repository"`
	Digest       string    `json:"digest"`
	ImageName    string    `json:"imageName"`
	OS           string    `json:"os"`
	Architecture string    `json:"architecture"`
	Author       string    `json:"author"`
	PulledAt     time.Time `json:"pulledAt"`
}

// ManifestDelete is the contents of MANIFEST_DELETE (documented).
type ManifestDelete struct {
	Namespace    string    `json:"namespace"`
	Repository   string    `json:"repository"`
	Digest       string    `json:"digest"`
	ImageName    string    `json:"imageName"`
	OS           string    `json:"os"`
	Architecture string    `json:"architecture"`
	Author       string    `json:"author"`
	DeletedAt    time.Time `json:"deletedAt"`
}

// ScanStatus is the last_scan_status enum of a scan summary.
type ScanStatus int

// The security scan status codes of the DTR document.
const (
	ScanStatusFailed    ScanStatus = 0 // an error occurred checking an image's layer
	ScanStatusUnscanned ScanStatus = 1 // the image has not yet been scanned
	ScanStatusScanning  ScanStatus = 2 // scanning in progress
	ScanStatusPending   ScanStatus = 3 // the image will be scanned when a worker is available
	ScanStatusScanned   ScanStatus = 4 // scanned, vulnerabilities not yet checked
	ScanStatusChecking  ScanStatus = 5 // being checked for vulnerabilities
	ScanStatusCompleted ScanStatus = 6 // fully security scanned
)

// ScanCompleted is the contents of SCAN_COMPLETED (documented).
type ScanCompleted struct {
	Namespace   string      `json:"namespace"`
	Repository  string      `json:"repository"`
	Tag         string      `json:"tag"`
	ImageName   string      `json:"imageName"`
	ScanSummary ScanSummary `json:"scanSummary"`
}

// ScanSummary is the scanSummary of SCAN_COMPLETED (documented). Critical
// counts issues with CVSS >= 7.0, Major 4.0 <= CVSS < 7.0, Minor
// 0 < CVSS < 4.0.
type ScanSummary struct {
	Namespace        string     `json:"namespace"`
	Repository       string     `json:"repository"`
	Tag              string     `json:"tag"`
	Critical         int        `json:"critical"`
	Major            int        `json:"major"`
	Minor            int        `json:"minor"`
	LastScanStatus   ScanStatus `json:"last_scan_status"`
	CheckCompletedAt time.Time  `json:"check_completed_at"`
}

// ScanFailed is the contents of SCAN_FAILED (documented).
type ScanFailed struct {
	Namespace  string `json:"namespace"`
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	ImageName  string `json:"imageName"`
	Error      string `json:"error"`
}

// Promotion is the contents of PROMOTION ("Image promoted from repository").
// Not detailed by the DTR document. The event belongs to the source
// repository, so namespace, repository, tag, digest and imageName describe the
// promoted image there (the subscription key matches them, as for TAG_*).
// targetRepository is "namespace/repository", as in DTR's promotion policy
// API, with targetTag and targetImageName the promoted copy.
// promotionPolicyID names the policy that promoted it.
type Promotion struct {
	Namespace         string    `json:"namespace"`
	Repository        string    `json:"repository"`
	Tag               string    `json:"tag"`
	Digest            string    `json:"digest"`
	ImageName         string    `json:"imageName"`
	PromotionPolicyID string    `json:"promotionPolicyID"`
	TargetRepository  string    `json:"targetRepository"`
	TargetTag         string    `json:"targetTag"`
	TargetImageName   string    `json:"targetImageName"`
	Author            string    `json:"author"`
	PromotedAt        time.Time `json:"promotedAt"`
}

// Mirroring is the contents of PUSH_MIRRORING ("Image mirrored from
// repository": this registry pushed the image to a remote one) and
// POLL_MIRRORING ("Image mirrored from remote repository": this registry
// pulled it from a remote one). Not detailed by the DTR document.
// namespace, repository, tag, digest and imageName describe the image in this
// registry (the subscription key matches them); remoteHost and
// remoteRepository ("namespace/repository") are named as in DTR's mirroring
// policy API, remoteTag is the tag on the remote side. mirroringPolicyID
// names the policy that mirrored it.
type Mirroring struct {
	Namespace         string    `json:"namespace"`
	Repository        string    `json:"repository"`
	Tag               string    `json:"tag"`
	Digest            string    `json:"digest"`
	ImageName         string    `json:"imageName"`
	MirroringPolicyID string    `json:"mirroringPolicyID"`
	RemoteHost        string    `json:"remoteHost"`
	RemoteRepository  string    `json:"remoteRepository"`
	RemoteTag         string    `json:"remoteTag"`
	Author            string    `json:"author"`
	MirroredAt        time.Time `json:"mirroredAt"`
}

// Repository event values of RepoEvent.Event.
const (
	RepoEventCreated = string(kubehookv1.RepoCreated)
	RepoEventUpdated = string(kubehookv1.RepoUpdated)
	RepoEventDeleted = string(kubehookv1.RepoDeleted)
)

// RepoEvent is the contents of REPO_EVENT (documented), and also of
// REPO_CREATED, REPO_UPDATED and REPO_DELETED, which split it by the value of
// event. Data, when a repository is created or updated, has the format of the
// DTR API's /api/v0/repositories/{namespace}/{repository} response.
type RepoEvent struct {
	Namespace  string          `json:"namespace"`
	Repository string          `json:"repository"`
	Event      string          `json:"event"`
	Author     string          `json:"author"`
	Data       json.RawMessage `json:"data"`
}

// ScannerUpdateCompleted is the contents of SCANNER_UPDATE_COMPLETED
// (documented). Replicas is keyed by replica ID.
type ScannerUpdateCompleted struct {
	ScannerVersion   string                    `json:"scanner_version"`
	ScannerUpdatedAt time.Time                 `json:"scanner_updated_at"`
	DBVersion        int                       `json:"db_version"`
	DBUpdatedAt      time.Time                 `json:"db_updated_at"`
	Success          bool                      `json:"success"`
	Replicas         map[string]ScannerReplica `json:"replicas"`
}

// ScannerReplica is one replica's entry in ScannerUpdateCompleted.Replicas
// (documented).
type ScannerReplica struct {
	DBUpdatedAt time.Time `json:"db_updated_at"`
	Version     string    `json:"version"`
	ReplicaID   string    `json:"replica_id"`
}

// ChartPush is the contents of CHART_PUSH (MSR 3). Not detailed by the DTR
// document: the TAG_PUSH shape for a Helm chart stored in a repository, with
// chartName and chartVersion in place of tag, and no os, architecture or
// imageName.
type ChartPush struct {
	Namespace    string    `json:"namespace"`
	Repository   string    `json:"repository"`
	ChartName    string    `json:"chartName"`
	ChartVersion string    `json:"chartVersion"`
	Digest       string    `json:"digest"`
	Author       string    `json:"author"`
	PushedAt     time.Time `json:"pushedAt"`
}

// ChartPull is the contents of CHART_PULL: the ChartPush shape with pulledAt
// in place of pushedAt.
type ChartPull struct {
	Namespace    string    `json:"namespace"`
	Repository   string    `json:"repository"`
	ChartName    string    `json:"chartName"`
	ChartVersion string    `json:"chartVersion"`
	Digest       string    `json:"digest"`
	Author       string    `json:"author"`
	PulledAt     time.Time `json:"pulledAt"`
}

// ChartDelete is the contents of CHART_DELETE: the ChartPush shape with
// deletedAt in place of pushedAt.
type ChartDelete struct {
	Namespace    string    `json:"namespace"`
	Repository   string    `json:"repository"`
	ChartName    string    `json:"chartName"`
	ChartVersion string    `json:"chartVersion"`
	Digest       string    `json:"digest"`
	Author       string    `json:"author"`
	DeletedAt    time.Time `json:"deletedAt"`
}

// ContentsFor returns a pointer to a new zero value of the contents struct
// of t, for decoding, or nil when t is not a known event type.
func ContentsFor(t kubehookv1.EventType) any {
	switch t {
	case kubehookv1.TagPush:
		return &TagPush{}
	case kubehookv1.TagPull:
		return &TagPull{}
	case kubehookv1.TagDelete:
		return &TagDelete{}
	case kubehookv1.ManifestPush:
		return &ManifestPush{}
	case kubehookv1.ManifestPull:
		return &ManifestPull{}
	case kubehookv1.ManifestDelete:
		return &ManifestDelete{}
	case kubehookv1.ScanCompleted:
		return &ScanCompleted{}
	case kubehookv1.ScanFailed:
		return &ScanFailed{}
	case kubehookv1.Promotion:
		return &Promotion{}
	case kubehookv1.PushMirroring, kubehookv1.PollMirroring:
		return &Mirroring{}
	case kubehookv1.RepoEvent, kubehookv1.RepoCreated, kubehookv1.RepoUpdated, kubehookv1.RepoDeleted:
		return &RepoEvent{}
	case kubehookv1.ScannerUpdateCompleted:
		return &ScannerUpdateCompleted{}
	case kubehookv1.ChartPush:
		return &ChartPush{}
	case kubehookv1.ChartPull:
		return &ChartPull{}
	case kubehookv1.ChartDelete:
		return &ChartDelete{}
	}
	return nil
}
