package payload

import (
	"encoding/json"
	"fmt"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// The fixed values of the sample payloads.
const (
	SampleNamespace  = "foo"
	SampleRepository = "bar"
	SampleTag        = "latest"
	// SampleDigest is the digest DTR's own test payload carried.
	SampleDigest       = "sha256:b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c"
	SampleImageName    = "registry.example.com/foo/bar:latest"
	SampleAuthor       = "admin"
	sampleHost         = "registry.example.com"
	sampleRemoteHost   = "mirror.example.com"
	sampleChartDigest  = "sha256:7d865e959b2466918c9863afca942d0fb89d7c9ac0c99bafc3749504ded97730"
	sampleReplicaID    = "a1b2c3d4e5f6"
	sampleRepositoryID = "7c1b2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
)

// SampleCreatedAt is the fixed creation time of the sample payloads.
var SampleCreatedAt = time.Date(2019, time.May, 22, 1, 55, 20, 471286995, time.UTC)

// Sample returns the fixed sample payload of t, sent by test deliveries as
// DTR's POST /api/v0/webhooks/test did: the same on every call, describing
// the image registry.example.com/foo/bar:latest (namespace "foo",
// repository "bar", tag "latest") handled by user "admin" at
// SampleCreatedAt. The sample of REPO_EVENT is a REPO_CREATED event. An
// unknown type gets empty contents ({}).
func Sample(t kubehookv1.EventType) Event {
	ev, err := NewEvent(t, SampleCreatedAt, sampleContents(t))
	if err != nil {
		// The sample contents are fixed values of this package.
		panic(fmt.Sprintf("payload: sample of %s: %v", t, err))
	}
	return ev
}

func sampleContents(t kubehookv1.EventType) any {
	at := SampleCreatedAt
	ns, repo, tag, digest, image, author := SampleNamespace, SampleRepository, SampleTag, SampleDigest, SampleImageName, SampleAuthor
	byDigest := sampleHost + "/" + ns + "/" + repo + "@" + digest
	const os, arch = "linux", "amd64"
	switch t {
	case kubehookv1.TagPush:
		return TagPush{Namespace: ns, Repository: repo, Tag: tag, Digest: digest, ImageName: image, OS: os, Architecture: arch, Author: author, PushedAt: at}
	case kubehookv1.TagPull:
		return TagPull{Namespace: ns, Repository: repo, Tag: tag, Digest: digest, ImageName: image, OS: os, Architecture: arch, Author: author, PulledAt: at}
	case kubehookv1.TagDelete:
		return TagDelete{Namespace: ns, Repository: repo, Tag: tag, Digest: digest, ImageName: image, OS: os, Architecture: arch, Author: author, DeletedAt: at}
	case kubehookv1.ManifestPush:
		return ManifestPush{Namespace: ns, Repository: repo, Digest: digest, ImageName: byDigest, OS: os, Architecture: arch, Author: author}
	case kubehookv1.ManifestPull:
		return ManifestPull{Namespace: ns, Repository: repo, Digest: digest, ImageName: byDigest, OS: os, Architecture: arch, Author: author, PulledAt: at}
	case kubehookv1.ManifestDelete:
		return ManifestDelete{Namespace: ns, Repository: repo, Digest: digest, ImageName: byDigest, OS: os, Architecture: arch, Author: author, DeletedAt: at}
	case kubehookv1.ScanCompleted:
		return ScanCompleted{Namespace: ns, Repository: repo, Tag: tag, ImageName: image, ScanSummary: ScanSummary{
			Namespace: ns, Repository: repo, Tag: tag, Critical: 1, Major: 2, Minor: 3,
			LastScanStatus: ScanStatusCompleted, CheckCompletedAt: at,
		}}
	case kubehookv1.ScanFailed:
		return ScanFailed{Namespace: ns, Repository: repo, Tag: tag, ImageName: byDigest,
			Error: "unable to analyze layer " + digest + ": unsupported layer format"}
	case kubehookv1.Promotion:
		return Promotion{Namespace: ns, Repository: repo, Tag: tag, Digest: digest, ImageName: image,
			PromotionPolicyID: "0f5e3c2a-8b1d-4e6f-9a7b-2c4d6e8f0a1b",
			TargetRepository:  ns + "/" + repo + "-prod", TargetTag: tag,
			TargetImageName: sampleHost + "/" + ns + "/" + repo + "-prod:" + tag,
			Author:          author, PromotedAt: at}
	case kubehookv1.PushMirroring, kubehookv1.PollMirroring:
		return Mirroring{Namespace: ns, Repository: repo, Tag: tag, Digest: digest, ImageName: image,
			MirroringPolicyID: "3e9a7c5b-1d2f-4a6b-8c0d-5e7f9a1b3c2d",
			RemoteHost:        sampleRemoteHost, RemoteRepository: ns + "/" + repo, RemoteTag: tag,
			Author: author, MirroredAt: at}
	case kubehookv1.RepoEvent, kubehookv1.RepoCreated:
		return RepoEvent{Namespace: ns, Repository: repo, Event: RepoEventCreated, Author: author, Data: sampleRepositoryData()}
	case kubehookv1.RepoUpdated:
		return RepoEvent{Namespace: ns, Repository: repo, Event: RepoEventUpdated, Author: author, Data: sampleRepositoryData()}
	case kubehookv1.RepoDeleted:
		return RepoEvent{Namespace: ns, Repository: repo, Event: RepoEventDeleted, Author: author, Data: json.RawMessage(`{}`)}
	case kubehookv1.ScannerUpdateCompleted:
		return ScannerUpdateCompleted{ScannerVersion: "3.0.9", ScannerUpdatedAt: at, DBVersion: 523, DBUpdatedAt: at, Success: true,
			Replicas: map[string]ScannerReplica{sampleReplicaID: {DBUpdatedAt: at, Version: "523", ReplicaID: sampleReplicaID}}}
	case kubehookv1.ChartPush:
		return ChartPush{Namespace: ns, Repository: repo, ChartName: repo, ChartVersion: "0.1.0", Digest: sampleChartDigest, Author: author, PushedAt: at}
	case kubehookv1.ChartPull:
		return ChartPull{Namespace: ns, Repository: repo, ChartName: repo, ChartVersion: "0.1.0", Digest: sampleChartDigest, Author: author, PulledAt: at}
	case kubehookv1.ChartDelete:
		return ChartDelete{Namespace: ns, Repository: repo, ChartName: repo, ChartVersion: "0.1.0", Digest: sampleChartDigest, Author: author, DeletedAt: at}
	}
	return struct{}{}
}

// sampleRepositoryData is a repository in the format of the DTR API's
// /api/v0/repositories/{namespace}/{repository} response.
func sampleRepositoryData() json.RawMessage {
	data, err := json.Marshal(struct {
		ID                  string `json:"id"`
		Namespace           string `json:"namespace"`
		NamespaceType       string `json:"namespaceType"`
		Name                string `json:"name"`
		ShortDescription    string `json:"shortDescription"`
		LongDescription     string `json:"longDescription"`
		Visibility          string `json:"visibility"`
		ScanOnPush          bool   `json:"scanOnPush"`
		ImmutableTags       bool   `json:"immutableTags"`
		EnableManifestLists bool   `json:"enableManifestLists"`
		Pulls               int    `json:"pulls"`
		Pushes              int    `json:"pushes"`
		TagLimit            int    `json:"tagLimit"`
	}{
		ID: sampleRepositoryID, Namespace: SampleNamespace, NamespaceType: "organization", Name: SampleRepository,
		Visibility: "private",
	})
	if err != nil {
		panic(err)
	}
	return data
}
