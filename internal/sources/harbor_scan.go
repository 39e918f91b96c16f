package sources

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubehook/kubehook/internal/payload"
)

// Vulnerability report media types of Harbor's scan_overview, preferred in
// this order when it holds several.
var harborReportMediaTypes = []string{
	"application/vnd.security.vulnerability.report; version=1.1",
	"application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0",
}

// harborPickReport returns the vulnerability report of scan_overview: the
// first of harborReportMediaTypes present, else the first key in sorted
// order. An empty overview gives a nil report.
func harborPickReport(p string, overview map[string]json.RawMessage) (string, *harborReport, error) {
	if len(overview) == 0 {
		return "", nil, nil
	}
	key := ""
	for _, mt := range harborReportMediaTypes {
		if _, ok := overview[mt]; ok {
			key = mt
			break
		}
	}
	if key == "" {
		keys := make([]string, 0, len(overview))
		for k := range overview {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		key = keys[0]
	}
	raw := overview[key]
	if isJSONNull(raw) {
		return key, nil, nil
	}
	var rep harborReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return "", nil, jsonInputError(fmt.Sprintf("%s[%q]", p, key), err)
	}
	return key, &rep, nil
}

// harborScanSummary maps a Harbor report summary onto DTR's scanSummary.
//
// DTR counts issues in CVSS bands: critical CVSS >= 7.0, major 4.0 to 7.0,
// minor below 4.0. Harbor counts them by severity, whose bands (CVSS v3
// ratings) are Critical 9.0-10.0, High 7.0-8.9, Medium 4.0-6.9, Low
// 0.1-3.9. So critical = Critical + High, major = Medium, minor = Low +
// Negligible (Harbor's name for a theoretical problem, below Low). Unknown
// (no score) and None are not counted: no DTR band holds them.
//
// last_scan_status is 6 (completed) for Harbor's scan_status Success, 0
// (failed) for Error, 2 (scanning) for Running, 3 (pending) for Pending and
// Scheduled, 1 (unscanned) for Stopped, and 6 for any other value of a
// SCANNING_COMPLETED event. A resource with no report (Harbor gave up
// waiting for it) gets zero counts and 4 (scanned, vulnerabilities not yet
// checked). check_completed_at is the report's end_time, else occur_at.
func harborScanSummary(p string, rep *harborReport, occurAt time.Time) (payload.ScanSummary, error) {
	sum := payload.ScanSummary{LastScanStatus: payload.ScanStatusScanned, CheckCompletedAt: occurAt}
	if rep == nil {
		return sum, nil
	}
	switch strings.ToLower(rep.ScanStatus) {
	case "error":
		sum.LastScanStatus = payload.ScanStatusFailed
	case "running":
		sum.LastScanStatus = payload.ScanStatusScanning
	case "pending", "scheduled":
		sum.LastScanStatus = payload.ScanStatusPending
	case "stopped":
		sum.LastScanStatus = payload.ScanStatusUnscanned
	default: // "success", or a status this version does not know
		sum.LastScanStatus = payload.ScanStatusCompleted
	}
	if rep.Summary != nil {
		sevs := make([]string, 0, len(rep.Summary.Summary))
		for sev := range rep.Summary.Summary {
			sevs = append(sevs, sev)
		}
		slices.Sort(sevs)
		for _, sev := range sevs {
			var n int
			if raw := rep.Summary.Summary[sev]; !isJSONNull(raw) && json.Unmarshal(raw, &n) != nil {
				return sum, badInput(p+".summary.summary."+sev, "must be a JSON number, a count of vulnerabilities")
			}
			if n < 0 {
				return sum, badInput(p+".summary.summary."+sev, "must not be negative")
			}
			switch strings.ToLower(sev) {
			case "critical", "high":
				sum.Critical += n
			case "medium":
				sum.Major += n
			case "low", "negligible":
				sum.Minor += n
			}
		}
	}
	if rep.EndTime != "" {
		end, err := time.Parse(time.RFC3339Nano, rep.EndTime)
		if err != nil {
			return sum, badInput(p+".end_time", "must be an RFC 3339 timestamp: %q", rep.EndTime)
		}
		if !timeInRange(end) {
			return sum, badInput(p+".end_time", "out of range: %q is not between the years 1 and 9999 in UTC", rep.EndTime)
		}
		if !end.IsZero() {
			sum.CheckCompletedAt = end.UTC()
		}
	}
	return sum, nil
}

// harborScanError is SCAN_FAILED's error. Harbor sends no reason; the
// report's status and scanner say what is known.
func harborScanError(rep *harborReport) string {
	msg := "vulnerability scan failed"
	if rep == nil {
		return msg
	}
	var details []string
	if rep.ScanStatus != "" {
		details = append(details, "status "+rep.ScanStatus)
	}
	if s := rep.Scanner; s != nil && s.Name != "" {
		details = append(details, strings.TrimSpace("scanner "+s.Name+" "+s.Version))
	}
	if len(details) > 0 {
		msg += " (" + strings.Join(details, ", ") + ")"
	}
	return msg
}
