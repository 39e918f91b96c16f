// Package version holds the kubehook version, set at link time.
package version

// Version is overridden with -ldflags "-X github.com/kubehook/kubehook/internal/version.Version=...".
var Version = "dev"

// UserAgent is the User-Agent kubehook sends on every delivery.
func UserAgent() string { return "kubehook/" + Version }
