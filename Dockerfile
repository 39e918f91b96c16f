# Build the kubehook binary.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev

WORKDIR /workspace
# Download the modules first, in their own layer, so source changes do not
# invalidate the module cache.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY main.go main.go
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/

# GOARCH has no default, so the image is built for the platform of the host
# unless --platform says otherwise.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X github.com/kubehook/kubehook/internal/version.Version=${VERSION}" -o kubehook .

# A static, non-root runtime image with no shell.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/kubehook /kubehook
USER 65532:65532

ENTRYPOINT ["/kubehook"]
