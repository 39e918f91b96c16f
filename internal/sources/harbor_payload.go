package sources

import "encoding/json"

// Harbor webhook event types that map onto DTR types.
const (
	harborPushArtifact      = "PUSH_ARTIFACT"
	harborPullArtifact      = "PULL_ARTIFACT"
	harborDeleteArtifact    = "DELETE_ARTIFACT"
	harborScanningCompleted = "SCANNING_COMPLETED"
	harborScanningFailed    = "SCANNING_FAILED"
	// ChartMuseum events, sent by Harbor up to 2.7.
	harborUploadChart   = "UPLOAD_CHART"
	harborDownloadChart = "DOWNLOAD_CHART"
	harborDeleteChart   = "DELETE_CHART"
)

// harborPayload is Harbor's webhook payload in its Default format (Harbor's
// src/pkg/notifier/model.Payload).
type harborPayload struct {
	Type      string           `json:"type"`
	OccurAt   int64            `json:"occur_at"`
	Operator  string           `json:"operator"`
	EventData *harborEventData `json:"event_data"`
}

type harborEventData struct {
	Resources  []json.RawMessage `json:"resources"`
	Repository *harborRepository `json:"repository"`
	Scan       *struct {
		ScanType string `json:"scan_type"`
	} `json:"scan"`
}

type harborResource struct {
	Digest       string                     `json:"digest"`
	Tag          string                     `json:"tag"`
	ResourceURL  string                     `json:"resource_url"`
	ScanOverview map[string]json.RawMessage `json:"scan_overview"`
}

type harborRepository struct {
	Name         string `json:"name"`
	Namespace    string `json:"namespace"`
	RepoFullName string `json:"repo_full_name"`
	RepoType     string `json:"repo_type"`
}

// harborReport is one report summary of scan_overview (Harbor's
// vuln.NativeReportSummary).
type harborReport struct {
	ScanStatus string `json:"scan_status"`
	Severity   string `json:"severity"`
	Summary    *struct {
		Total   int                        `json:"total"`
		Fixable int                        `json:"fixable"`
		Summary map[string]json.RawMessage `json:"summary"`
	} `json:"summary"`
	EndTime string `json:"end_time"`
	Scanner *struct {
		Name    string `json:"name"`
		Vendor  string `json:"vendor"`
		Version string `json:"version"`
	} `json:"scanner"`
}
